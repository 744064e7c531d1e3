"""A lead worker builds what every job reads at its start and keeps its heap out of the collector's
passes (gc.freeze): one full pass over ~200,000 objects held an urgent lead ~115 ms. A new beat index
(an import) is frozen after the job that built it. Run in a process of its own: freezing is for the
life of a process, and this one is pytest's."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.data import district_dir
from tests.procs import ROOT

SCRIPT = textwrap.dedent("""
    import gc, sys, uuid
    from rq import Queue
    from dispatch.district import import_district
    from geo.district import load_district_dir
    from service.core.db import sync_session
    from workers.run import Worker, settle
    from workers.tasks import ctx

    def tracked(obj):  # gc.get_objects() lists what the collector passes over, not what is frozen
        return any(o is obj for o in gc.get_objects())

    settle()
    first = ctx.index.current
    assert first is not None, "the beat index is built at the worker's start"
    assert not tracked(first) and not tracked(first.index), "the beat index is still in the collector's passes"
    assert gc.get_freeze_count() > 50_000, gc.get_freeze_count()

    with sync_session(ctx.engine) as s:  # an import gives the district a new version
        import_district(s, load_district_dir(sys.argv[1]))
        s.commit()
    queue = Queue(f"heap-{uuid.uuid4().hex}", connection=ctx.redis)
    queue.enqueue("workers.tasks.process_leads", [], result_ttl=0)
    Worker([queue], connection=ctx.redis).work(burst=True, with_scheduler=False)
    second = ctx.index.current
    assert second is not first, "the job did not build the new index"
    assert not tracked(second) and not tracked(second.index), "the new index was not frozen after its job"
    print("frozen", gc.get_freeze_count())
""")


def test_a_lead_worker_freezes_its_startup_heap_and_a_new_index_after_its_job(settings, district) -> None:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(district_dir())], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": path, "LOG_LEVEL": "WARNING"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1].startswith("frozen"), done.stdout[-2000:]

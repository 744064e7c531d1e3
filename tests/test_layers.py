"""The import contracts (pyproject [tool.importlinter]) hold for the code, and they do catch a
forbidden import: a copy of the packages where the ladder imports field dispatch, or the kernel
imports a capability, is refused by `lint-imports`."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data import ROOT

LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("service", "dispatch", "mobile_api", "geo", "workers")


def lint(where: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT)], cwd=where, env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def test_the_code_keeps_every_contract() -> None:
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("dispatch/ladder/rules.py", "from dispatch.field import visits", "dispatch.ladder is not allowed to import dispatch.field"),
    ("dispatch/states.py", "import dispatch.flows", "dispatch.states is not allowed to import dispatch.flows"),
    ("geo/crs.py", "import dispatch.models", "geo is not allowed to import dispatch"),
    ("workers/queues.py", "import service.tools.simulate", "service.tools"),
    ("dispatch/field/matching.py", "import sqlalchemy", "sqlalchemy"),
])
def test_a_forbidden_import_breaks_the_build(tmp_path: Path, module: str, line: str, broken: str) -> None:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "static", "ui"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "service" / "ui").mkdir()
    (tmp_path / "service" / "ui" / "__init__.py").write_text("")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # the forbidden import\n")
    out = lint(tmp_path)
    assert out.returncode != 0 and "BROKEN" in out.stdout, out.stdout[-2000:]
    assert broken in out.stdout.replace("\n", " "), out.stdout[-3000:]

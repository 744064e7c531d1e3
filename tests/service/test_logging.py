"""Log lines: readable on a terminal, JSON otherwise; phone and ID numbers masked in both."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from service.core.logging import mask_processor, mask_text

ROOT = Path(__file__).resolve().parents[2]
PHONE, ID = "13812345678", "110101199003071234"
LOG = f"""
import logging
from service.core.logging import configure_logging, log
configure_logging("INFO")
log.info("lead_received", phone="{PHONE}", note="caller id {ID}")
logging.getLogger("uvicorn.error").warning("stdlib line %s", "{PHONE}")
"""


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "LOG_JSON"}


def test_json_lines_when_stderr_is_not_a_terminal():
    out = subprocess.run([sys.executable, "-c", LOG], cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert [x["event"] for x in lines] == ["lead_received", "stdlib line 138****5678"]
    assert lines[0]["phone"] == "138****5678" and lines[0]["note"] == "caller id 1101**********1234"
    assert PHONE not in out.stderr and ID not in out.stderr


def _on_terminal(code: str, env: dict) -> str:
    """Run `code` with its stderr on a pseudo-terminal; what it wrote there."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(30) == 0
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_readable_lines_on_a_terminal():
    text = _on_terminal(LOG, _env())
    assert "lead_received" in text and "stdlib line 138****5678" in text
    assert "138****5678" in text and "1101**********1234" in text
    assert PHONE not in text and ID not in text
    for line in text.splitlines():  # not JSON: the console renderer's "time [level] event key=value"
        assert not line.lstrip().startswith("{")


def test_log_json_setting_wins_over_the_terminal():
    code = LOG.replace('configure_logging("INFO")', 'from service.core.settings import Settings\n'
                       'configure_logging("INFO", Settings().log_json)')
    text = _on_terminal(code, {**_env(), "LOG_JSON": "true"})
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["phone"] == "138****5678" and PHONE not in text


@pytest.mark.parametrize("raw, hidden, kept", [
    ("caller +86 138-1234-5678 again", ["1234-5678", "12345678"], ["138****5678"]),
    ("id 11010519491231002X end", ["19491231"], ["1101**********002X"]),
    ("first-generation id 110105491231002", ["491231"], ["1101*******1002"]),
    ("座机 0532-88886666 and 010 12345678", ["88886666", "12345678"], ["0532-****66", "010-****78"]),
    ("张三 13812345678", ["张三"], ["张*"]),
    ("姓名: 李四, 手机 13900001111", ["李四"], ["姓名: 李*", "手机 139****1111"]),
    ('name="Wang Wei" called', ["Wang Wei"], ['name="W']),
    ("地址：青岛市市南区香港中路10号, 其他", ["香港中路10号"], ["地址：青岛***, 其他"]),
    ("lead 12345 at 120.3483933,36.0472158 on 2026-12-06T10:39:54+08:00 port 13013",
     [], ["lead 12345 at 120.3483933,36.0472158 on 2026-12-06T10:39:54+08:00 port 13013"]),
])
def test_masking_covers_landlines_ids_with_x_names_and_addresses(raw, hidden, kept):
    out = mask_text(raw)
    assert all(h not in out for h in hidden), out
    assert all(k in out for k in kept), out


def test_fields_named_for_a_person_are_masked_whatever_they_hold():
    out = mask_processor(None, "info", {"event": "x", "name": "邓博", "loc_address": "青岛市崂山区松岭路",
                                        "subject": {"name": "Deng Bo", "phone": "16639577231"}})
    assert out == {"event": "x", "name": "邓*", "loc_address": "青岛***",
                   "subject": {"name": "D******", "phone": "166****7231"}}

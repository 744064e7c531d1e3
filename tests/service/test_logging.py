"""Log lines: readable on a terminal, JSON otherwise; phone and ID numbers masked in both."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

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

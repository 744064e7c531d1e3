"""structlog logs: readable lines on a terminal, JSON lines otherwise (or as LOG_JSON says).
Phone and ID numbers are masked in every log line, whoever logged them, in both formats."""
from __future__ import annotations

import logging
import re
import sys

import structlog

_ID = re.compile(r"(?<!\d)(\d{4})\d{10}(\d{3}[\dXx])(?!\d)")
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask_text(text: str) -> str:
    """Mask anything shaped like a Chinese ID number or mobile number inside free text."""
    return _PHONE.sub(r"\1****\2", _ID.sub(r"\1**********\2", text))


def _mask(value):
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    return value


def mask_processor(_logger, _name, event_dict: dict) -> dict:
    # uvicorn's `color_message` is its message again with ANSI codes: noise in either format.
    return {k: _mask(v) for k, v in event_dict.items() if k != "color_message"}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (test runners and daemonisers swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """Route structlog and stdlib logging to stderr; `json=None`: JSON unless stderr is a TTY."""
    if json is None:
        json = not _stderr_is_tty()
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer(colors=_stderr_is_tty())
    structlog.configure(
        processors=[*shared, mask_processor, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    # Records from the stdlib (uvicorn, rq, alembic) go through the same masking and renderer.
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, mask_processor, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rq.worker", "rq.cron"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # rq narrates every job and uvicorn every request at INFO: too loud for a service log.
    for name in ("uvicorn.access", "rq.worker", "rq.cron", "rq.queue"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


log = structlog.get_logger("quanzu")

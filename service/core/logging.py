"""structlog logs: readable lines on a terminal, JSON lines otherwise (or as LOG_JSON says).
Phone and ID numbers, landlines, names beside them and addresses are masked in every log line,
whoever logged them, in both formats."""
from __future__ import annotations

import logging
import re
import sys

import structlog

# Identifiers in free text, whatever their spelling: 18-digit ID numbers (check digit X too) and
# 15-digit ones; mobiles with +86/86 and spaces or dashes; landlines with their area code.
_ID = re.compile(r"(?<![\dA-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![\dA-Za-z])")
_ID15 = re.compile(r"(?<![\dA-Za-z])(\d{4})\d{7}(\d{4})(?![\dA-Za-z])")
_PHONE = re.compile(r"(?<![\d+])(?:(?:\+|00)?86[ -]?)?(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<![\d.:/-])(0[1-9]\d{1,2})[ -]?\d{5,6}(\d{2})(?![\d.:/-])")
# Names and addresses beside them: a labelled value (姓名/name, 地址/address), and the Chinese name
# written right next to a number masked above ("张三 138****5678").
_LABELLED_NAME = re.compile(r"(姓名|联系人|户主|name)([\"'\s]*[:=：][\"'\s]*)([\u4e00-\u9fff·]{1,6}(?=[\"',，;；\s]|$)|[A-Za-z][A-Za-z .-]{0,30}(?=[\"',，;；]|$))")
_LABELLED_ADDRESS = re.compile(r"(地址|住址|address)([\"'\s]*[:=：][\"'\s]*)([^\"',，;；\n]{1,80})")
_NAME_BY_NUMBER = re.compile(r"(?<![\u4e00-\u9fff])(?!手机|电话|号码|座机|固话|身份|证号|来电|主叫|被叫|尾号)([\u4e00-\u9fff])[\u4e00-\u9fff]{1,3}(?=[\s:：,，]*(?:\d{3,4}\*{4}|\d{4}\*{7,10}|0\d{2,3}-\*{4}))")
_MASKED_KEYS = {"name": "name", "subject_name": "name", "victim_name": "name", "address": "address",
                "loc_address": "address", "addr": "address"}


def mask_name(name: str) -> str:
    return name[:1] + "*" * max(len(name) - 1, 1)


def mask_text(text: str) -> str:
    """Mask anything shaped like a Chinese ID number, mobile or landline number inside free text,
    a name labelled or written beside one, and a labelled address."""
    text = _ID.sub(r"\1**********\2", text)
    text = _ID15.sub(r"\1*******\2", text)
    text = _PHONE.sub(r"\1****\2", text)
    text = _LANDLINE.sub(r"\1-****\2", text)
    text = _LABELLED_NAME.sub(lambda m: m[1] + m[2] + mask_name(m[3]), text)
    text = _LABELLED_ADDRESS.sub(lambda m: m[1] + m[2] + m[3][:2] + "***", text)
    return _NAME_BY_NUMBER.sub(lambda m: m[1] + "*", text)


def _mask(value, key: str | None = None):
    if isinstance(value, str):
        kind = _MASKED_KEYS.get(key or "")
        if kind == "name":
            return mask_name(value)
        if kind == "address":
            return value[:2] + "***"
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    return value


def mask_processor(_logger, _name, event_dict: dict) -> dict:
    # uvicorn's `color_message` is its message again with ANSI codes: noise in either format.
    return {k: v if k == "event" and not isinstance(v, str) else _mask(v, k)
            for k, v in event_dict.items() if k != "color_message"}


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

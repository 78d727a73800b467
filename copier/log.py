"""Logging: structlog, JSON lines when stderr is not a terminal, with secrets scrubbed.

Events are snake_case facts (``item_copied``, ``batch_dead_lettered``); the job, role and
worker are bound once with ``bind_context``. The last processor scrubs anything that looks
like a key, a SAS signature or a password from every value, so a secret that slipped into
an exception text still never reaches a log line.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_SECRET_PATTERNS = [
    # AccountKey=...; SharedAccessSignature=...; in connection strings
    (re.compile(r"(?i)(AccountKey|SharedAccessSignature|SharedAccessKey|Password)=[^;\s'\"]+"), r"\1=***"),
    # SAS query parameters: sig=..., and the whole query of a signed URL
    (re.compile(r"(?i)([?&]sig=)[^&\s'\"]+"), r"\1***"),
    # user:password@ in URLs (redis://:pw@host)
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)([^/@\s:]*):([^/@\s]+)@"), r"\1\2:***@"),
    # Authorization headers
    (re.compile(r"(?i)(SharedKey\s+[^:\s]+:)[A-Za-z0-9+/=]+"), r"\1***"),
    (re.compile(r"(?i)(Bearer\s+)[A-Za-z0-9._\-]+"), r"\1***"),
]


def scrub(text: str) -> str:
    """Remove secrets from a string (keys, SAS signatures, URL passwords)."""
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _scrub_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = scrub(value)
        elif isinstance(value, BaseException):
            event[key] = scrub(str(value))
    return event


def configure(level: str = "info", json: bool | None = None, stream: Any = None) -> None:
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # The Azure SDK logs request URLs (with SAS) at INFO on its own loggers: keep it quiet.
    logging.getLogger("azure").setLevel(logging.WARNING)


def bind_context(**values: Any) -> None:
    structlog.contextvars.bind_contextvars(**values)


def get(name: str | None = None) -> Any:
    return structlog.get_logger(name)

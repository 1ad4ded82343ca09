"""Log configuration for every process: JSON (or text) lines on stdout, each carrying the
request id (and account) of the request it was written for, with secrets redacted.

Filters sit on the handler, not on loggers, so every record that reaches the output —
ours, uvicorn's, a library's — passes through them.
"""

from __future__ import annotations

import logging
import logging.config
import traceback
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from wacrm.settings import Settings
from wacrm.telemetry.context import current_request
from wacrm.telemetry.redaction import redact_text, redact_value

ACCESS_LOGGER = "wacrm.access"
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``account_id`` of the request being handled, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_request()
        if context is not None:
            if getattr(record, "request_id", None) is None:
                record.request_id = context.request_id
            if getattr(record, "account_id", None) is None and context.account_id:
                record.account_id = context.account_id
        return True


class RedactSecrets(logging.Filter):
    """Redacts the message, its arguments, every extra field and any traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            record.msg = redact_value(record.msg)
        else:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: log what we have rather than nothing
                message = f"{record.msg} {record.args}"
            record.msg, record.args = redact_text(message), None
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD_ATTRIBUTES:
                setattr(record, name, redact_value({name: value})[name])
        if record.exc_info:
            # Rendered here so the formatters print the redacted text, not the exception.
            rendered = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info, record.exc_text = None, redact_text(rendered)
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    """One human-readable line: time, level, logger, message, then the request's context."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extras = [
            f"{name}={value}"
            for name, value in record.__dict__.items()
            if name not in _STANDARD_ATTRIBUTES and name != "color_message"
        ]
        return f"{line} [{' '.join(extras)}]" if extras else line


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(process)d %(message)s",
        rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        timestamp="time",
    )


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for our processes (uvicorn applies it in each one)."""
    formatter = (
        {"()": "wacrm.telemetry.logs.json_formatter"}
        if settings.log_format == "json"
        else {"()": "wacrm.telemetry.logs.TextFormatter"}
    )
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "wacrm.telemetry.logs.RequestContextFilter"},
            "redact": {"()": "wacrm.telemetry.logs.RedactSecrets"},
        },
        "formatters": {"line": formatter},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "line",
                # Context first: the request id is added, then everything is redacted.
                "filters": ["context", "redact"],
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Ours propagate to the root; uvicorn's keep their own level but use our handler.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            # Alembic narrates loading its plugins at INFO whenever /readyz reads the head.
            "alembic": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))

"""The server's logs: text for a terminal, or one JSON object per line; configured once.

The standard library's ``logging``, configured with ``logging.config.dictConfig`` (for
``serve``, through uvicorn's ``log_config``, so its own loggers and ours share the
format), decision 20. Every line carries the id of the request being answered, if any
(``request_id``, set by the API's middleware, ``api.observe``). What is logged is chosen
so that no personal data is: route templates, statuses, counts and ids of the ledger's
objects, never request bodies, query strings or personal values (docs/OPERATIONS.md, "Logs").
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

#: Attributes every LogRecord has: what is not among them was passed as ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id",
                                                                          "color_message"}


def current_request_id() -> str | None:
    return request_id.get()


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (None outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message, request_id, the
    record's ``extra`` fields, and the exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def logging_config(log_format: str = "text", level: str = "info") -> dict[str, Any]:
    """The ``dictConfig`` of a server process: uvicorn's loggers and ours, in one format, at one level."""
    fmt, loud = LogFormat(log_format), LogLevel(level).upper()  # ValueError naming a value neither is
    formatter = ({"()": "ledger.logs.JsonFormatter"} if fmt is LogFormat.json
                 else {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"})
    handler = {"class": "logging.StreamHandler", "formatter": "main", "filters": ["request_id"],
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "ledger.logs.RequestIdFilter"}},
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {
            "uvicorn": {"handlers": ["main"], "level": loud, "propagate": False},
            "uvicorn.error": {"handlers": ["main"], "level": loud, "propagate": False},
            # Its access log names paths with their ids and query strings: ours
            # (transfer_ledger.access) names route templates instead.
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "transfer_ledger": {"handlers": ["main"], "level": loud, "propagate": False},
            "api": {"handlers": ["main"], "level": loud, "propagate": False},
            "ledger": {"handlers": ["main"], "level": loud, "propagate": False},
        },
    }

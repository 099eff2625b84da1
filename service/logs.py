"""Logging set-up shared by the CLI, the gateway and its worker processes.

Two formats: JSON lines (one object per record, for log pipelines) and
readable text (for a terminal). ``auto`` picks text when stderr is a terminal
and JSON otherwise, so a container gets JSON and a developer gets text. Every
record logged while serving a request carries that request's id, read from
the context variable the edges set; the access log's structured fields
(``extra={"fields": {...}}``) become JSON keys or ``key=value`` pairs.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from service.core.exchange import REQUEST_ID


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served when it was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        request_id = getattr(record, "request_id", "")
        if fields:
            return text + " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != "")
        if request_id:
            return text + f" request_id={request_id}"
        return text


def configure_logging(level: str, log_format: str = "auto") -> None:
    # No format prints thread or process names: not collecting them makes every record cheaper.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request line at INFO; the gateway reports what matters itself.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""Logging set-up shared by the CLI, the gateway and its worker processes.

Two formats: JSON lines (one object per record, for log pipelines) and
readable text (for a terminal). ``auto`` picks text when stderr is a terminal
and JSON otherwise, so a container gets JSON and a developer gets text. Every
record logged while serving a request carries that request's id, read from
the context variable the edges set; the access log's structured fields
(``extra={"fields": {...}}``) become JSON keys or ``key=value`` pairs.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO

import orjson

from service.core.exchange import REQUEST_ID


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served when it was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = ""

    def timestamp(self, created: float) -> str:
        """ISO 8601 in UTC to the millisecond, as ``datetime.isoformat`` writes it; the part up to
        the second is formatted once per second (an access line at a time is the common case)."""
        second = int(created)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        exception = self.formatException(record.exc_info) if record.exc_info else None
        fields = getattr(record, "fields", None)
        return self.line(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            getattr(record, "request_id", ""),
            fields,
            exception,
        )

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        request_id: str = "",
        fields: dict[str, Any] | None = None,
        exception: str | None = None,
    ) -> str:
        """One JSON line: time, level, logger, message, the request id, then the structured fields."""
        line: dict[str, Any] = {"ts": self.timestamp(created), "level": level, "logger": logger, "msg": message}
        if request_id:
            line["request_id"] = request_id
        if fields:
            line.update(fields)
        if exception is not None:
            line["exception"] = exception
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


class LineHandler(logging.Handler):
    """Writes records as lines to a stream, the lines logged during one turn of the event loop
    together in one write at the end of that turn.

    Under load many requests finish in the same turn, and a write (with its system call) per
    access line was most of the access log's cost. Nothing waits longer than the turn it was
    logged in; a record logged outside the event loop's thread, or with no loop running, is
    written at once, and ``logging.shutdown`` (at exit) flushes whatever is left.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._binary: BinaryIO | None = getattr(stream, "buffer", None)
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        self._schedule()

    def structured(self, logger: str, message: str, fields: dict[str, Any]) -> None:
        """An INFO line of ``fields`` written as the JSON formatter would write its record, without
        making one (the access log's lane: a LogRecord and the handler chain cost more than the line)."""
        formatter = self.formatter
        assert isinstance(formatter, JsonFormatter)
        text = formatter.line(time.time(), "info", logger, message, fields=fields)
        with self.lock:  # type: ignore[union-attr]  # as `handle` holds it around `emit`: other threads flush
            self._pending.append(text)
            self._schedule()

    def _schedule(self) -> None:
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            self._scheduled = False
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            text = "\n".join(pending) + "\n"
            try:
                if self._binary is not None:
                    self._binary.write(text.encode("utf-8", "replace"))
                    self._binary.flush()
                else:
                    self._stream.write(text)
                    self._stream.flush()
            except (OSError, ValueError):  # the stream is closed or gone; logging must not fail a request
                pass


_LANE: list[Callable[[str, str, dict[str, Any]], None] | None] = [None]


def structured_lane() -> Callable[[str, str, dict[str, Any]], None] | None:
    """Where structured INFO lines may go directly (JSON lines, as configured here), or None: then
    they must go through ``logging`` (text format, or logging set up by someone else)."""
    return _LANE[0]


def configure_logging(level: str, log_format: str = "auto") -> None:
    # No format prints thread or process names: not collecting them makes every record cheaper.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = LineHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _LANE[0] = handler.structured if log_format == "json" else None
    # httpx logs every request line at INFO; the gateway reports what matters itself.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

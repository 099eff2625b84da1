"""The log handler and JSON formatter: lines of one event-loop turn go out in one write, nothing
waits longer than that turn, and the JSON line keeps its shape."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import UTC, datetime

import orjson

from service.app.logs import JsonFormatter, LineHandler, RequestIdFilter
from service.core.exchange import REQUEST_ID


class CountingBuffer(io.BytesIO):
    writes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)


def logger_with(handler: logging.Handler) -> logging.Logger:
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    log = logging.getLogger(f"chatgate.test.{id(handler)}")
    log.propagate = False
    log.handlers = [handler]
    log.setLevel(logging.INFO)
    return log


class Text:
    """A text stream whose binary buffer counts writes."""

    def __init__(self) -> None:
        self.buffer = CountingBuffer()

    def write(self, text: str) -> int:
        raise AssertionError("the handler writes bytes to the buffer")

    def flush(self) -> None:
        pass

    def lines(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.buffer.getvalue().splitlines()]


def test_one_turn_of_the_loop_is_one_write_and_lines_wait_no_longer() -> None:
    stream = Text()
    log = logger_with(LineHandler(stream))  # type: ignore[arg-type]

    async def serve() -> None:
        REQUEST_ID.set("req-a")
        log.info("first", extra={"fields": {"status": 200}})
        log.info("second")
        assert stream.buffer.writes == 0  # still this turn
        await asyncio.sleep(0)
        assert stream.buffer.writes == 1 and [line["msg"] for line in stream.lines()] == ["first", "second"]
        log.warning("third")
        await asyncio.sleep(0)
        assert stream.buffer.writes == 2

    asyncio.run(serve())
    first = stream.lines()[0]
    assert first["request_id"] == "req-a" and first["status"] == 200 and first["level"] == "info"
    log.info("outside the loop")  # written at once
    assert stream.buffer.writes == 3 and stream.lines()[-1]["msg"] == "outside the loop"


def test_json_timestamps_read_as_isoformat_writes_them() -> None:
    formatter = JsonFormatter()
    for created in (1_764_417_600.0, 1_764_417_600.9994, 1_764_417_601.0015, 1_764_417_601.5):
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert formatter.timestamp(created) == expected


def test_a_text_stream_without_a_buffer_still_gets_every_line() -> None:
    stream = io.StringIO()
    log = logger_with(LineHandler(stream))
    log.info("plain")
    assert orjson.loads(stream.getvalue())["msg"] == "plain"


def test_the_structured_lane_writes_what_the_record_path_writes() -> None:
    stream = Text()
    handler = LineHandler(stream)  # type: ignore[arg-type]
    log = logger_with(handler)
    fields = {"request_id": "req-z", "status": 200, "model": None, "finish_reasons": ["stop"], "duration_ms": 1.5}
    REQUEST_ID.set("req-z")
    log.info("request", extra={"fields": fields})
    handler.structured(log.name, "request", fields)
    by_record, by_lane = stream.lines()
    assert list(by_record) == list(by_lane)  # the same keys in the same order
    assert {k: v for k, v in by_record.items() if k != "ts"} == {k: v for k, v in by_lane.items() if k != "ts"}

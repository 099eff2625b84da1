"""An incremental Server-Sent Events decoder, by the WHATWG rules.

Field lines, dispatch on a blank line, one optional space after the colon,
multi-line ``data``, and LF, CRLF or lone CR line ends, split anywhere across
network reads.
"""

from __future__ import annotations

from typing import NamedTuple


class ServerSentEvent(NamedTuple):
    """One dispatched event (a tuple: it is made for every streamed token)."""

    event: str
    data: bytes


# Makes an event without the Python-level `__new__` NamedTuple generates (one per streamed token).
_event = tuple.__new__

# Event names as text, decoded once (a stream repeats a handful of them).
_NAMES = {
    name.encode(): name
    for name in (
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    )
}


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events each read completes.

    ``only``: the event names wanted; other events are read past and never made (a relayed
    stream is watched for four kinds of event among one per token)."""

    __slots__ = ("_data", "_event", "_only", "_pending", "_skip_lf")

    def __init__(self, only: frozenset[str] | None = None) -> None:
        self._only = only
        self._pending = b""
        self._event = ""
        self._data: list[bytes] = []
        # A CR ended the previous read: a LF opening the next one belongs to it.
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = chunk.endswith(b"\r")
        buffer = self._pending + chunk if self._pending else chunk
        if b"\r" not in buffer and not self._data and not self._event:
            return self._frames(buffer)
        lines = buffer.splitlines(keepends=True)
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            self._pending = lines.pop()
        else:
            self._pending = b""
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        return events

    def _frames(self, buffer: bytes) -> list[ServerSentEvent]:
        """The common case, LF line ends and no event half read: whole frames at a time (what ends at a
        blank line), the rest kept for the next read. The same rules as ``_line``, without a call per line."""
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._pending = buffer
            return []
        self._pending = buffer[end + 2 :]
        events: list[ServerSentEvent] = []
        only = self._only
        for frame in buffer[:end].split(b"\n\n"):
            # Anthropic's frames are exactly `event: NAME` then `data: JSON`: read those with two finds.
            if frame.startswith(b"event: "):
                line_end = frame.find(b"\n")
                if line_end > 0 and frame.startswith(b"data: ", line_end + 1) and frame.find(b"\n", line_end + 1) < 0:
                    name = frame[7:line_end]
                    event = _NAMES.get(name) or name.decode("utf-8", "replace") or "message"
                    if only is None or event in only:
                        events.append(_event(ServerSentEvent, (event, frame[line_end + 7 :])))
                    continue
            event, data = "", []
            for line in frame.split(b"\n"):
                if not line or line[0] == 0x3A:  # blank (a frame's own edge), or a comment
                    continue
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    data.append(value)
                elif name == b"event":
                    event = value.decode("utf-8", "replace")
            if data and (only is None or (event or "message") in only):
                events.append(ServerSentEvent(event or "message", data[0] if len(data) == 1 else b"\n".join(data)))
        return events

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" starts a comment
            return None
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        return None  # `id` and `retry` mean nothing to a one-shot request

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = ServerSentEvent(self._event or "message", data)
        self._event = ""
        self._data = []
        return event if self._only is None or event.event in self._only else None

"""The SSE decoder, by the spec's rules, however the bytes are split across reads."""

from __future__ import annotations

import pytest

from service.transport.sse import ServerSentEvent, SSEDecoder

CASES = [
    (b"event: ping\ndata: {}\n\n", [ServerSentEvent("ping", b"{}")]),
    (b"event:ping\ndata:{}\n\n", [ServerSentEvent("ping", b"{}")]),
    (b"event: a\r\ndata: 1\r\n\r\n", [ServerSentEvent("a", b"1")]),
    (b"event: a\rdata: 1\r\r", [ServerSentEvent("a", b"1")]),
    (b"data: line one\ndata: line two\n\n", [ServerSentEvent("message", b"line one\nline two")]),
    (b": comment\nevent: a\n: another\ndata: x\n\n", [ServerSentEvent("a", b"x")]),
    (b"data:  two spaces\n\n", [ServerSentEvent("message", b" two spaces")]),
    (b"event: a\n\nevent: b\ndata: 2\n\n", [ServerSentEvent("b", b"2")]),
    (b"id: 7\nretry: 10\ndata: y\n\n", [ServerSentEvent("message", b"y")]),
    # Anthropic's shape, read by the decoder's shortcut; the rules must not change with it.
    (b'event: content_block_delta\ndata: {"a":1}\n\n', [ServerSentEvent("content_block_delta", b'{"a":1}')]),
    (b"event: \ndata: x\n\n", [ServerSentEvent("message", b"x")]),
    (b"event:  spaced\ndata: \n\n", [ServerSentEvent(" spaced", b"")]),
    (b"event: new_kind\ndata: 1\ndata: 2\n\n", [ServerSentEvent("new_kind", b"1\n2")]),
    (b"event: a\ndata:1\n\nevent: b\ndata: 2\n\n", [ServerSentEvent("a", b"1"), ServerSentEvent("b", b"2")]),
    (b"event: \xff\ndata: z\n\n", [ServerSentEvent("\ufffd", b"z")]),
    (b"data: unfinished\n", []),  # last: the tests that join every case rely on it
]


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_decodes_whole_input(raw: bytes, expected: list[ServerSentEvent]) -> None:
    assert SSEDecoder().feed(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_decodes_the_same_when_fed_one_byte_at_a_time(raw: bytes, expected: list[ServerSentEvent]) -> None:
    decoder = SSEDecoder()
    events = [event for i in range(len(raw)) for event in decoder.feed(raw[i : i + 1])]
    assert events == expected


def test_crlf_split_between_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\r") == []
    assert decoder.feed(b"\ndata: 1\r") == []
    assert decoder.feed(b"\n\r\n") == [ServerSentEvent("a", b"1")]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 16, 64])
def test_line_ends_mixed_across_reads_of_any_size(size: int) -> None:
    """LF-only reads take a whole-frame path, reads with CR the line-by-line one; switching between
    them mid-stream, at any split, loses and invents nothing."""
    raw = b"".join(r for r, _ in CASES[:-1]) + b"data: tail\n\n"
    expected = [e for _, events in CASES[:-1] for e in events] + [ServerSentEvent("message", b"tail")]
    decoder = SSEDecoder()
    assert [e for i in range(0, len(raw), size) for e in decoder.feed(raw[i : i + size])] == expected


@pytest.mark.parametrize("size", [1, 3, 7, 64, 4096])
def test_only_the_wanted_events_at_any_split(size: int) -> None:
    """A decoder told which event names it wants returns exactly those of the events an unfiltered one
    returns, on the whole-frame path and the line-by-line one (CR line ends), at any read size."""
    raw = b"".join(r for r, _ in CASES[:-1]) + b"event: keep\r\ndata: 2\r\n\r\nevent: drop\ndata: 3\n\ndata: tail\n\n"
    wanted = frozenset({"keep", "message", "a"})
    every, only = SSEDecoder(), SSEDecoder(wanted)
    all_events = [e for i in range(0, len(raw), size) for e in every.feed(raw[i : i + size])]
    kept = [e for i in range(0, len(raw), size) for e in only.feed(raw[i : i + size])]
    assert kept == [e for e in all_events if e.event in wanted]
    assert {e.event for e in kept} == wanted  # each path kept something and dropped the rest
    assert len(kept) < len(all_events)

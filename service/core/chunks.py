"""What a streamed batch holds: protobuf chunks, and text deltas kept as plain Python until needed.

Most of a stream is text deltas, and each one passes through every layer: built by the
provider, inspected by the usage policy, encoded by an edge. As protobuf messages they
cost about 2 us of Python each (a copy of a template on the way in, a look at the fields
on the way out), as much as the rest of a chunk's path together. So a provider may put a
``TextDelta`` in a batch where it would put a chunk that carries nothing but
``choices[0].delta.content``; it stands for exactly that chunk, which ``as_chunk`` builds.
An edge that writes protobuf (gRPC) builds it; one that writes its own dialect (OpenAI
SSE, Responses events) reads ``text`` and the identity directly.

The schema stays the contract: a ``TextDelta`` never holds anything a chunk could not.
"""

from __future__ import annotations

from chatgate.v1 import chat_pb2

Chunk = chat_pb2.ChatCompletionChunk
# Finish reasons by OpenAI's names (the proto's enum names, lower-cased, without the prefix).
FINISH_NAMES = {
    value.number: value.name.removeprefix("FINISH_REASON_").lower()
    for value in chat_pb2.FinishReason.DESCRIPTOR.values
    if value.number
}


class TextDelta:
    """A chunk that only adds ``text`` to one choice's content.

    ``identity`` is the stream's chunk with its id, created time and model and one empty
    choice, shared by every delta of the stream and never changed once shared (a provider
    that learns a new identity makes a new one). ``index`` is the choice's index.
    """

    __slots__ = ("identity", "index", "text")

    def __init__(self, identity: Chunk, text: str, index: int = 0) -> None:
        self.identity = identity
        self.text = text
        self.index = index

    def __repr__(self) -> str:
        return f"TextDelta({self.text!r}, index={self.index}, id={self.identity.id!r})"

    def __eq__(self, other: object) -> bool:
        """Equal to another delta, or to a protobuf chunk, when they stand for the same chunk."""
        if isinstance(other, TextDelta | Chunk):
            return as_chunk(self) == as_chunk(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the messages it stands for

    def to_chunk(self) -> Chunk:
        chunk = Chunk()
        chunk.CopyFrom(self.identity)
        choice = chunk.choices[0]
        if self.index:
            choice.index = self.index
        choice.delta.content = self.text
        return chunk


Item = Chunk | TextDelta  # one entry of a batch
Batch = list[Item]


def as_chunk(item: Item) -> Chunk:
    """The protobuf chunk an item stands for (a chunk is itself)."""
    return item.to_chunk() if isinstance(item, TextDelta) else item


def as_chunks(batch: Batch) -> list[Chunk]:
    return [as_chunk(item) for item in batch]

"""What the simulator answers: a deterministic reply derived from the request. Pure functions.

A request steers the simulator with directives, written as ``sim:NAME`` or
``sim:NAME=VALUE`` anywhere in the last user message (or in an ``x-sim``
header), so that clients of the gateway can reach every path end to end:

    sim:words=N          reply with N words of text (one stream delta per word)
    sim:blocks=N         split the reply into N text blocks
    sim:tool / sim:notool    call (or do not call) the first tool, even under `auto`
    sim:preamble         write a short text block before the tool calls
    sim:parallel         call every tool, in parallel
    sim:call=NAME        call the tool of that name (as `sim:tool` does the first)
    sim:refusal          stop with `refusal` (and `stop_details` saying why)
    sim:pause            stop with `pause_turn`
    sim:context          stop with `model_context_window_exceeded`
    sim:cache            report prompt-cache reads and writes in usage (1-hour writes when a
                         breakpoint asks for `ttl: 1h`)
    (web search)         offering the web search server tool makes the reply search and cite a result
    sim:redacted         add a redacted thinking block when thinking is on
    sim:ping / sim:unknown_event   interleave pings / an unknown event type
    sim:future_block     put a content block of a type newer than any client knows before the text
    sim:status=CODE      fail with that HTTP status and Anthropic's error body
    sim:retry_after=S    with status: send `retry-after: S`
    sim:error_after=N    streams: an `overloaded_error` event after N deltas
    sim:drop_after=N     streams: close the connection after N deltas
    sim:stall=S          wait S seconds before answering
    sim:pace_ms=M        streams: wait M milliseconds between deltas
    sim:replay=NAME      play back a recorded file from the replay directory
    sim:times=N          apply the fault directives to the first N attempts of this body only
    sim:only_model=ID    apply the fault directives only to requests for that upstream model
    sim:html=CODE        fail with that status and an HTML page, as a proxy would
    sim:echo_key         fail with a message that quotes the x-api-key and an internal address
    sim:spend_limit      fail with a 429 for a workspace spend limit (no retry-after)
    sim:truncated        send half of the body, then close cleanly
    sim:close_after=N    streams: close cleanly after N deltas, without `message_stop`
    sim:stall_after_start=S  streams: after `message_start`, S seconds of silence (no pings)
    sim:hold_open=S      streams: after `message_stop`, keep the connection open S seconds
    sim:reset_after_stop streams: after `message_stop`, break the connection
    sim:reset            answer the status line, then break the connection before the body is whole
                         (with sim:times=N, only the first N attempts of this body: one caller's poison)
    sim:outage=S         start an outage: this and every message request for S seconds answers 529
                         (also `POST /_sim/outage {"seconds": S}`, 0 ending it; `{"requests": N}`: the
                         next N message requests, whoever sends them: a burst); a one-off 401 is
                         `sim:status=401 sim:times=1`
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

Json = dict[str, Any]
DIRECTIVE = re.compile(r"sim:([a-z_]+)(?:=([\w.\-]+))?")
SIMULATOR_NOTE = "[chatgate simulator]"
DEFAULT_WORDS = 12


@dataclass(slots=True)
class Block:
    """One content block of the reply, as Anthropic would return it."""

    type: str
    text: str = ""
    id: str = ""
    name: str = ""
    input: Json = field(default_factory=dict)
    signature: str = ""
    data: str = ""
    citations: list[Json] = field(default_factory=list)
    results: list[Json] = field(default_factory=list)

    def to_json(self) -> Json:
        if self.type == "text":
            out: Json = {"type": "text", "text": self.text}
            if self.citations:
                out["citations"] = self.citations
            return out
        if self.type in ("tool_use", "server_tool_use"):
            return {"type": self.type, "id": self.id, "name": self.name, "input": self.input}
        if self.type == "web_search_tool_result":
            return {"type": self.type, "tool_use_id": self.id, "content": self.results}
        if self.type == "thinking":
            return {"type": "thinking", "thinking": self.text, "signature": self.signature}
        if self.type == "future_block":
            return {"type": "future_block", "payload": {"note": self.text}}
        return {"type": "redacted_thinking", "data": self.data}


@dataclass(slots=True)
class Reply:
    id: str
    model: str
    blocks: list[Block]
    stop_reason: str
    stop_sequence: str | None
    usage: Json
    stop_details: Json | None = None

    def message_json(self) -> Json:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [b.to_json() for b in self.blocks],
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "stop_details": self.stop_details,
            "usage": self.usage,
        }


def directives(body: Json, header: str | None) -> dict[str, str]:
    found = {name: value or "" for name, value in DIRECTIVE.findall(header or "")}
    for name, value in DIRECTIVE.findall(last_user_text(body)):
        found.setdefault(name, value or "")
    return found


def last_user_text(body: Json) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
        if texts or any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content or []):
            return " ".join(texts)
    return ""


def signature_for(thinking: str, account: str = "") -> str:
    """A stand-in signature the simulator can verify when the block comes back; a model whose
    thinking is bound to its account signs with the account too, so another account's fails."""
    seed = b"chatgate-sim:" + (f"account={account}:" if account else "").encode()
    return base64.b64encode(hashlib.sha256(seed + thinking.encode()).digest()).decode()


def account_of(key: str) -> str:
    """The simulated account a key belongs to: what follows its last `@` (`sk-test-1@acme`), else `default`."""
    return key.rsplit("@", 1)[1] if "@" in key else "default"


def count_tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: about four bytes a token."""
    return max(1, len(orjson.dumps(value)) // 4)


def plan_reply(
    body: Json, flags: dict[str, str], *, always_thinks: bool = False, display: str = "summarized", signer: str = ""
) -> Reply:
    """The reply; ``always_thinks`` and ``display`` are the model's thinking rules, ``signer`` the
    account its thinking signatures are bound to (empty: not bound)."""
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    blocks: list[Block] = []
    thinking = body.get("thinking") or {}
    thought = 0
    if thinking.get("type") in ("enabled", "adaptive") or (always_thinks and not thinking):
        text = f"The user asked: {summary(last_user_text(body), 12)}. I will answer plainly."
        thought = len(text.split())
        if thinking.get("display", display) == "omitted":
            text = ""  # the thinking happened (and is billed); its text is not returned
        blocks.append(Block("thinking", text=text, signature=signature_for(text, signer)))
        if "redacted" in flags:
            blocks.append(Block("redacted_thinking", data=base64.b64encode(digest.encode()).decode()))
    tool_blocks = plan_tools(body, flags, digest)
    searched = not tool_blocks and offers_web_search(body) and "notool" not in flags and not tool_results(body)
    if tool_blocks:
        if "preamble" in flags:
            blocks.append(Block("text", text="Let me call a tool."))
        blocks.extend(tool_blocks)
        stop_reason = "tool_use"
    elif searched:
        blocks.extend(web_search_blocks(body, digest))
        stop_reason = "end_turn"
    else:
        if "future_block" in flags:
            blocks.append(Block("future_block", text="a block type from the future"))
        blocks.extend(text_blocks(body, flags))
        stop_reason = special_stop(flags)
    reply = Reply("msg_sim_" + digest[:24], str(body.get("model", "")), blocks, stop_reason, None, usage(body, flags))
    if stop_reason == "refusal":
        reply.stop_details = {
            "type": "refusal",
            "category": "general_harms",
            "explanation": "The simulator declined, as sim:refusal asked.",
        }
    if searched:
        reply.usage["server_tool_use"] = {"web_search_requests": 1, "web_fetch_requests": 0}
    apply_stop_sequences(reply, body.get("stop_sequences") or [])
    apply_max_tokens(reply, int(body.get("max_tokens") or 0))
    visible = output_tokens([b for b in reply.blocks if b.type != "thinking"]) if thought else 0
    reply.usage["output_tokens"] = visible + thought if thought else output_tokens(reply.blocks)
    if thought:
        reply.usage["output_tokens_details"] = {"thinking_tokens": thought}
    return reply


def offers_web_search(body: Json) -> bool:
    return any(str(t.get("type", "")).startswith("web_search_") for t in body.get("tools") or [])


SEARCH_RESULTS = (
    ("https://example.com/claude-gateways", "Running Claude behind a gateway"),
    ("https://example.org/prompt-caching", "Prompt caching, explained"),
)


def web_search_blocks(body: Json, digest: str) -> list[Block]:
    """A search, its results, and an answer whose second sentence cites the first result."""
    tool_id = f"srvtoolu_sim_{digest[:16]}"
    query = summary(last_user_text(body), 8) or "query"
    results = [
        {"type": "web_search_result", "url": url, "title": title, "encrypted_content": "ZW5j", "page_age": None}
        for url, title in SEARCH_RESULTS
    ]
    url, title = SEARCH_RESULTS[0]
    citation = {
        "type": "web_search_result_location",
        "url": url,
        "title": title,
        "encrypted_index": "aWR4",
        "cited_text": "Gateways translate between APIs.",
    }
    return [
        Block("server_tool_use", id=tool_id, name="web_search", input={"query": query}),
        Block("web_search_tool_result", id=tool_id, results=results),
        Block("text", text="I searched the web. "),
        Block("text", text="Gateways translate between APIs.", citations=[citation]),
    ]


def special_stop(flags: dict[str, str]) -> str:
    for flag, reason in (("refusal", "refusal"), ("pause", "pause_turn"), ("context", "model_context_window_exceeded")):
        if flag in flags:
            return reason
    return "end_turn"


def summary(text: str, words: int) -> str:
    cleaned = DIRECTIVE.sub("", text).split()
    return " ".join(cleaned[:words]) + (" ..." if len(cleaned) > words else "")


def text_blocks(body: Json, flags: dict[str, str]) -> list[Block]:
    structured = (body.get("output_config") or {}).get("format") or {}
    if structured.get("type") == "json_schema":
        return [Block("text", text=orjson.dumps(sample(structured.get("schema") or {})).decode())]
    results = tool_results(body)
    if results:
        base = TOOL_RESULTS + "; ".join(results) + "."
    else:
        base = f"{SIMULATOR_NOTE} You said: {summary(last_user_text(body), 40) or '(nothing)'}."
        attachments = attachment_note(body)
        if attachments:
            base += f" I received {attachments}."
    words = base.split()
    wanted = int(flags.get("words") or 0)
    if wanted:
        filler = [f"word{i}" for i in range(wanted)]
        words = (words + filler)[:wanted] if wanted > len(words) else words[:wanted]
    text = " ".join(words)
    parts = max(1, min(int(flags.get("blocks") or 1), len(words)))
    if parts == 1:
        return [Block("text", text=text)]
    size = -(-len(words) // parts)
    return [
        Block("text", text=" ".join(words[i : i + size]) + (" " if i + size < len(words) else ""))
        for i in range(0, len(words), size)
    ]


def attachment_note(body: Json) -> str:
    """Names the images and documents of the last user turn, so a client can see they arrived."""
    messages = body.get("messages") or []
    content = messages[-1].get("content") if messages else None
    if not isinstance(content, list):
        return ""
    kinds = []
    for block in content:
        source = block.get("source") or {} if isinstance(block, dict) else {}
        if block.get("type") in ("image", "document"):
            kinds.append(f"{block['type']} ({source.get('media_type') or source.get('type')})")
    return ", ".join(kinds)


def tool_results(body: Json) -> list[str]:
    messages = body.get("messages") or []
    if not messages or messages[-1].get("role") != "user" or isinstance(messages[-1].get("content"), str):
        return []
    found = []
    for block in messages[-1].get("content") or []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            content = block.get("content", "")
            if isinstance(content, list):
                content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
            found.append(f"{block.get('tool_use_id')} -> {summary(str(content), 12)}")
    return found


TOOL_RESULTS = "Tool results received: "


def resumes(body: Json) -> bool:
    """Whether the user's turn hands back an earlier answer of the simulator's own (an agent's
    summary of its work after compacting the conversation, say): the loop is resumed, not begun, so
    the simulator answers rather than calling its first tool again."""
    for message in body.get("messages") or []:
        if message.get("role") == "user":
            said = orjson.dumps(message.get("content")).decode()
            if SIMULATOR_NOTE in said or TOOL_RESULTS in said:
                return True
    return False


def plan_tools(body: Json, flags: dict[str, str], digest: str) -> list[Block]:
    tools = [t for t in body.get("tools") or [] if t.get("type", "custom") == "custom"]  # client tools only
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or choice.get("type") == "none":
        return []
    if choice.get("type") == "tool":
        chosen = [t for t in tools if t.get("name") == choice.get("name")]
    elif "call" in flags and not tool_results(body) and not resumes(body):
        chosen = [t for t in tools if t.get("name") == flags["call"]]
    elif choice.get("type") == "any" or ("tool" in flags or "parallel" in flags):
        chosen = tools if "parallel" in flags and not choice.get("disable_parallel_tool_use") else tools[:1]
    elif "notool" in flags or tool_results(body) or resumes(body):
        return []
    else:  # auto: call the first tool once, the way an agent loop begins
        chosen = tools[:1]
    return [
        Block("tool_use", id=f"toolu_sim_{digest[:16]}_{i}", name=t["name"], input=sample(t.get("input_schema") or {}))
        for i, t in enumerate(chosen)
    ]


def sample(schema: Json, depth: int = 0, defs: Json | None = None) -> Any:
    """A deterministic value that satisfies simple JSON Schemas, `$ref`s into `$defs` (or the
    older `definitions`) followed as the real model's constrained decoding follows them."""
    if depth > 12:  # deep enough for real schemas; bounds a `$ref` that refers to itself
        return None
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1]) if ref.startswith(("#/$defs/", "#/definitions/")) else None
        return sample(target or {}, depth + 1, defs)
    for combined in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combined)
        if isinstance(options, list) and options:
            chosen = next((o for o in options if o.get("type") != "null"), options[0])
            return sample(chosen, depth + 1, defs)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        required = schema.get("required") or list(properties)
        return {name: sample(properties.get(name) or {}, depth + 1, defs) for name in required}
    if kind == "array":
        return [sample(schema.get("items") or {}, depth + 1, defs) for _ in range(max(1, schema.get("minItems", 1)))]
    return {"string": "sample", "integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind or "", "sample")


def usage(body: Json, flags: dict[str, str]) -> Json:
    prompt = count_tokens([body.get("system"), body.get("messages"), body.get("tools")])
    cache_read = cache_write = 0
    if "cache" in flags:
        cache_read, cache_write = prompt // 2, prompt // 4
        prompt -= cache_read + cache_write
    hour = b'"ttl":"1h"' in orjson.dumps(body)  # any 1-hour breakpoint: the writes are kept an hour
    return {
        "input_tokens": max(1, prompt),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": 0 if hour else cache_write,
            "ephemeral_1h_input_tokens": cache_write if hour else 0,
        },
        "output_tokens": 0,
    }


def output_tokens(blocks: list[Block]) -> int:
    total = 0
    for block in blocks:
        if block.type in ("text", "thinking"):
            total += len(block.text.split())
        elif block.type == "tool_use":
            total += count_tokens(block.input)
        else:
            total += 8
    return max(1, total)


def apply_stop_sequences(reply: Reply, sequences: list[str]) -> None:
    """Cuts the text at the first stop sequence, as Claude stops before emitting it."""
    for i, block in enumerate(reply.blocks):
        if block.type != "text":
            continue
        hits = [(block.text.find(s), s) for s in sequences if s and s in block.text]
        if hits:
            position, sequence = min(hits)
            block.text = block.text[:position]
            del reply.blocks[i + 1 :]
            reply.stop_reason, reply.stop_sequence = "stop_sequence", sequence
            return


def apply_max_tokens(reply: Reply, max_tokens: int) -> None:
    """Truncates text replies that would exceed ``max_tokens`` (one word a token here)."""
    if max_tokens <= 0 or output_tokens(reply.blocks) <= max_tokens:
        return
    budget = max_tokens
    kept: list[Block] = []
    for block in reply.blocks:
        cost = output_tokens([block])
        if block.type == "text" and cost > budget:
            block.text = " ".join(block.text.split()[:budget])
            if block.text:
                kept.append(block)
            break
        if cost > budget:
            break
        kept.append(block)
        budget -= cost
    reply.blocks = kept
    reply.stop_reason = "max_tokens"


def stream_events(reply: Reply, flags: dict[str, str]) -> list[tuple[str, Json]]:
    """The SSE event sequence for a reply, with one delta per word or JSON slice."""
    events: list[tuple[str, Json]] = []
    start = dict(reply.message_json(), content=[], stop_reason=None, stop_sequence=None)
    start_usage = {k: v for k, v in reply.usage.items() if k not in ("output_tokens_details", "server_tool_use")}
    start["usage"] = dict(start_usage, output_tokens=1)
    events.append(("message_start", {"type": "message_start", "message": start}))
    events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(reply.blocks):
        events.extend(block_events(index, block))
        if "ping" in flags:
            events.append(("ping", {"type": "ping"}))
        if "unknown_event" in flags:
            events.append(("future_event", {"type": "future_event", "index": index}))
    # The final usage is cumulative and whole, as the real API sends it today (the
    # TTL split of cache writes only comes in `message_start`).
    delta_usage = {k: v for k, v in reply.usage.items() if k != "cache_creation"}
    change: Json = {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence}
    if reply.stop_details is not None:
        change["stop_details"] = reply.stop_details
    events.append(("message_delta", {"type": "message_delta", "delta": change, "usage": delta_usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def block_events(index: int, block: Block) -> list[tuple[str, Json]]:
    def delta(payload: Json) -> tuple[str, Json]:
        return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": payload}

    start: Json
    deltas: list[tuple[str, Json]] = []
    if block.type == "text":
        start = {"type": "text", "text": ""}
        deltas = [delta({"type": "citations_delta", "citation": c}) for c in block.citations]
        deltas += [delta({"type": "text_delta", "text": w}) for w in re.findall(r"\S+\s*|\s+", block.text)]
    elif block.type in ("web_search_tool_result", "future_block"):
        start = block.to_json()
        if block.type == "future_block":
            deltas = [delta({"type": "future_delta", "value": "more from the future"})]
    elif block.type in ("tool_use", "server_tool_use"):
        start = {"type": block.type, "id": block.id, "name": block.name, "input": {}}
        raw = orjson.dumps(block.input).decode() if block.input else ""
        deltas = [delta({"type": "input_json_delta", "partial_json": raw[i : i + 7]}) for i in range(0, len(raw), 7)]
    elif block.type == "thinking":
        start = {"type": "thinking", "thinking": ""}
        deltas = [delta({"type": "thinking_delta", "thinking": w}) for w in re.findall(r"\S+\s*", block.text)]
        deltas.append(delta({"type": "signature_delta", "signature": block.signature}))
    else:
        start = {"type": "redacted_thinking", "data": block.data}
    return [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
        *deltas,
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]

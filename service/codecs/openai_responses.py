"""OpenAI Responses API requests -> chatgate.v1, field by field (`POST /v1/responses`).

A Responses request is a list of *items* (messages, reasoning, function and custom tool
calls and their outputs) where Chat Completions has messages. This module reads the body
into a ``ResponsesRequest``: the core request without its messages, the input items as
the response will store and list them (ids assigned), and what the answer must echo. The
messages are built from items (``messages_from_items``) once the items of an earlier
stored response, if any, are known: a run of assistant-side items becomes one assistant
message, as Claude wants it.

Two Responses ideas have no Chat Completions twin and are kept here, in both directions:
custom (free-form) tools, which Claude sees as tools with one string property ``input``,
and reasoning items, whose ``encrypted_content`` carries Claude's signed thinking block
(``reasoning_content`` below), opaque to the client, so a stateless caller can send it
back and Claude verifies the chain of thought. docs/mapping.md has the table.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatgate.v1 import chat_pb2, chat_service_pb2
from service.core.compat import CompatReport
from service.core.errors import InvalidRequest

from .fields import Json, get_bool, get_enum, get_int, get_list, get_number, get_object, get_str, to_struct, type_error
from .openai_chat import CACHE_TTLS, COMPATIBILITY, EFFORTS, IMAGE_DETAILS, PROMPT_CACHE_MODES, TOOL_CHOICE_MODES

Request = chat_service_pb2.ChatCompletionRequest

ROLES = {
    "user": chat_pb2.ROLE_USER,
    "system": chat_pb2.ROLE_SYSTEM,
    "developer": chat_pb2.ROLE_DEVELOPER,
    "assistant": chat_pb2.ROLE_ASSISTANT,
}
SUMMARIES = ("auto", "concise", "detailed")
# The single property a custom tool's input travels in, as Claude sees the tool.
CUSTOM_INPUT = "input"
CUSTOM_SCHEMA: Json = {
    "type": "object",
    "properties": {CUSTOM_INPUT: {"type": "string", "description": "The tool's whole input, as free-form text."}},
    "required": [CUSTOM_INPUT],
    "additionalProperties": False,
}
WEB_SEARCH_TOOLS = frozenset(
    {"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"}
)
ITEM_PREFIXES = {
    "message": "msg_",
    "reasoning": "rs_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "custom_tool_call": "ctc_",
    "custom_tool_call_output": "ctco_",
    "compaction": "cmp_",
}
# Versioned so the encoding can change without breaking items clients hold.
REASONING_PREFIX = "chatgate.r1."
COMPACTION_PREFIX = "chatgate.c1."
# How a compaction item's summary is put before Claude: the turns it replaces, in Claude's own words.
COMPACTED = "(The earlier part of this conversation was compacted. Summary of it:)\n"
INCLUDABLE = frozenset(
    {
        "reasoning.encrypted_content",  # always honoured: every reasoning item carries it
        "message.output_text.logprobs",
        "web_search_call.action.sources",
        "web_search_call.results",
        "file_search_call.results",
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
        "message.input_image.image_url",
    }
)
# Fields read below; anything else is reported as ignored.
KNOWN_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "previous_response_id",
        "store",
        "stream",
        "stream_options",
        "include",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "max_tool_calls",
        "temperature",
        "top_p",
        "top_logprobs",
        "text",
        "reasoning",
        "metadata",
        "user",
        "safety_identifier",
        "truncation",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "background",
        "conversation",
        "prompt",
        "context_management",
        "moderation",
        "compatibility",
    }
)
# Fields that would change what the conversation is: refused rather than dropped, in every mode.
REFUSED = {
    "conversation": "the Conversations API is not served; send the items, or continue with `previous_response_id`",
    "prompt": "stored prompt templates are not served; send `instructions` and `input`",
}


# Claude's rule for tool names; a namespaced tool's flat name is kept within it.
TOOL_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_TOOL_NAME = 64


def new_id(prefix: str) -> str:
    return prefix + os.urandom(24).hex()


@dataclass(slots=True)
class ResponsesRequest:
    """A parsed `POST /v1/responses`: the core request (messages come later), the items, the echo."""

    request: Request
    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    instructions: str | None
    input_items: list[Json]  # as stored and listed by `GET /v1/responses/{id}/input_items`
    custom_tools: frozenset[str]
    summaries: bool  # reasoning summaries asked for (`reasoning.summary`)
    echo: Json  # the request's settings, as the response object repeats them
    report: CompatReport
    ignored: list[str] = field(default_factory=list)
    # Claude's flat tool name -> (namespace, name), for tools sent inside a `namespace` tool.
    namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Where each core tool came from in the body (`tools[2]`, `tools[3].tools[0]`), for error params.
    tool_params: list[str] = field(default_factory=list)
    # Which input item each core message came from (None: the instructions; negative: a stored item).
    message_items: list[int | None] = field(default_factory=list)
    # `context_management` compaction: compact the conversation when it is estimated above this many
    # input tokens (0: the model's own threshold, a share of its context window); None: never.
    compact_threshold: int | None = None
    # The stored conversation this turn continues, once read (``ChatService.history``: at most once a
    # turn) or replaced by ``compacted``; None: not read yet.
    known_history: list[Json] | None = None

    def continues(self, items: list[Json]) -> None:
        """This turn follows ``items`` (a conversation the caller holds, not the store: a socket's last
        response that was not stored): they lead its input, as if the client had sent them."""
        self.input_items = [*items, *self.input_items]
        self.previous_response_id = None

    def compacted(self, items: list[Json]) -> None:
        """This turn continues from ``items`` (user messages and a compaction item, then this turn's
        own items) instead of the stored chain: stored, it starts a new chain, so a continuation of
        it reads the compacted conversation, not the long one."""
        self.input_items = items
        self.known_history = []
        self.previous_response_id = None

    def param(self, param: str | None) -> str | None:
        """A core request's param name as this request names it (``responses_param``)."""
        return responses_param(param, self.message_items, self.tool_params)

    def chat_request(self, history: Iterable[Json] = (), *, strict: bool = False) -> Request:
        """The core request: instructions, then the earlier items, then this request's items.

        ``strict`` is the policy in force: what parsing set aside is refused now, or kept in
        ``report`` for the answer's adjustments."""
        report = CompatReport(strict=strict)
        for item in self.report.items:
            (report.drop if item.action == "dropped" else report.adjust)(item.param, item.detail)
        self.report = report
        request = Request()
        request.CopyFrom(self.request)
        self.message_items = []
        if self.instructions:
            request.messages.add(role=chat_pb2.ROLE_SYSTEM).content.add(text=self.instructions)
            self.message_items.append(None)
        history = list(history)
        items = [*history, *self.input_items]
        sources: list[int] = []
        request.messages.extend(
            messages_from_items(items, self.custom_tools, report, offset=-len(history), sources=sources)
        )
        self.message_items.extend(sources)
        return request


def request_from_json(body: Any, *, mode: chat_pb2.Compatibility | None = None) -> ResponsesRequest:
    """Reads and checks a request body; raises ``InvalidRequest`` naming the field. ``mode`` is the
    compatibility the client chose outside the body (a header), if any. What Claude cannot honour is
    collected in ``report``; the policy is applied by ``chat_request``."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    model = get_str(body, "model", "model")
    if not model:
        raise InvalidRequest("You must provide a model parameter.", param="model", code="missing_required_parameter")
    for name, why in REFUSED.items():
        if body.get(name) is not None:
            raise InvalidRequest(
                f"`{name}` is not supported by this gateway: {why}.", param=name, code="unsupported_parameter"
            )
    request = Request(model=model)
    chosen = get_enum(body, "compatibility", "compatibility", COMPATIBILITY)
    if chosen is not None:
        request.compatibility = chosen
    elif mode is not None:
        request.compatibility = mode
    report = CompatReport(strict=False)
    request.stream_options.include_usage = True  # the response object always carries usage
    tools = _Tools()
    _read_tools(body, request, report, tools)
    custom = frozenset(tools.custom)
    _read_settings(body, request, report)
    summaries = _read_reasoning(body, request)
    input_items = items_from_input(body.get("input"))
    # Checked now, so a bad item is a 400 before anything else happens.
    messages_from_items(input_items, custom, CompatReport(strict=False))
    store = get_bool(body, "store", "store")
    return ResponsesRequest(
        request=request,
        model=model,
        stream=bool(get_bool(body, "stream", "stream")),
        store=True if store is None else store,
        previous_response_id=get_str(body, "previous_response_id", "previous_response_id") or None,
        instructions=get_str(body, "instructions", "instructions"),
        input_items=input_items,
        custom_tools=custom,
        summaries=summaries,
        echo=_echo(body),
        report=report,
        ignored=sorted(set(body) - KNOWN_FIELDS),
        namespaces=tools.namespaces,
        tool_params=tools.params,
        compact_threshold=_read_context_management(body),
    )


def _read_context_management(body: Json) -> int | None:
    """`context_management: [{"type": "compaction", "compact_threshold": N}]`: the threshold (0 for
    the model's own), or None when the request asks for no compaction."""
    entries = get_list(body, "context_management", "context_management")
    threshold: int | None = None
    for k, entry in enumerate(entries or ()):
        param = f"context_management[{k}]"
        if not isinstance(entry, dict):
            raise type_error(param, "an object")
        if get_str(entry, "type", f"{param}.type") != "compaction":
            raise InvalidRequest(f"`{param}.type` must be `compaction`.", param=f"{param}.type", code="invalid_value")
        given = get_int(entry, "compact_threshold", f"{param}.compact_threshold")
        if given is not None and given < 1:
            raise InvalidRequest(
                f"`{param}.compact_threshold` must be a positive number of tokens.",
                param=f"{param}.compact_threshold",
                code="invalid_value",
            )
        threshold = given or 0
    return threshold


def _read_settings(body: Json, request: Request, report: CompatReport) -> None:
    if (tokens := get_int(body, "max_output_tokens", "max_output_tokens")) is not None:
        request.max_completion_tokens = tokens
    for name in ("temperature", "top_p"):
        if (number := get_number(body, name, name)) is not None:
            setattr(request, name, number)
    if (parallel := get_bool(body, "parallel_tool_calls", "parallel_tool_calls")) is not None:
        request.parallel_tool_calls = parallel
    for name in ("user", "safety_identifier", "service_tier", "prompt_cache_key", "prompt_cache_retention"):
        if (text := get_str(body, name, name)) is not None:
            setattr(request, name, text)
    _read_text(body, request)
    if (options := get_object(body, "prompt_cache_options", "prompt_cache_options")) is not None:
        target = request.prompt_cache_options
        target.mode = (
            get_enum(options, "mode", "prompt_cache_options.mode", PROMPT_CACHE_MODES)
            or chat_pb2.PROMPT_CACHE_MODE_IMPLICIT
        )
        target.ttl = get_enum(options, "ttl", "prompt_cache_options.ttl", CACHE_TTLS) or chat_pb2.CACHE_TTL_UNSPECIFIED
    metadata = get_object(body, "metadata", "metadata") or {}
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise type_error(f"metadata.{key}", "a string")
    include = get_list(body, "include", "include") or []
    for k, name in enumerate(include):
        if not isinstance(name, str) or name not in INCLUDABLE:
            raise InvalidRequest(f"`include[{k}]` is not a known value.", param=f"include[{k}]", code="invalid_value")
        if name != "reasoning.encrypted_content":
            report.drop(f"include[{k}]", f"`{name}` has no Claude equivalent")
    _read_unsupported(body, report)


def _read_unsupported(body: Json, report: CompatReport) -> None:
    """Settings Claude has no place for: dropped and reported (lenient) or refused (strict)."""
    truncation = get_str(body, "truncation", "truncation")
    if truncation not in (None, "disabled", "auto"):
        raise InvalidRequest("`truncation` must be `auto` or `disabled`.", param="truncation", code="invalid_value")
    if truncation == "auto":
        report.drop("truncation", "the gateway does not trim conversations; a too-long input is an error")
    if get_bool(body, "background", "background"):
        report.adjust("background", "answered in the foreground: the finished response comes back at once")
    if get_int(body, "top_logprobs", "top_logprobs"):
        report.drop("top_logprobs", "Claude returns no log probabilities")
    if get_int(body, "max_tool_calls", "max_tool_calls") is not None:
        report.drop("max_tool_calls", "Claude has no limit on built-in tool calls per response")
    if body.get("moderation") is not None:
        report.drop("moderation", "no Claude equivalent")


def _read_text(body: Json, request: Request) -> None:
    text = get_object(body, "text", "text")
    if text is None:
        return
    if (verbosity := get_str(text, "verbosity", "text.verbosity")) is not None:
        request.verbosity = verbosity
    fmt = get_object(text, "format", "text.format")
    if fmt is None:
        return
    kind = get_str(fmt, "type", "text.format.type")
    if kind == "text":
        return
    if kind == "json_object":
        request.response_format.type = chat_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT
        return
    if kind != "json_schema":
        raise InvalidRequest(
            "`text.format.type` must be `text`, `json_object` or `json_schema`.",
            param="text.format.type",
            code="invalid_value",
        )
    target = request.response_format
    target.type = chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA
    target.json_schema.name = get_str(fmt, "name", "text.format.name") or ""
    target.json_schema.description = get_str(fmt, "description", "text.format.description") or ""
    schema = get_object(fmt, "schema", "text.format.schema")
    if schema is None:
        raise InvalidRequest(
            "`text.format.schema` is required.", param="text.format.schema", code="missing_required_parameter"
        )
    target.json_schema.schema.CopyFrom(to_struct(schema, "text.format.schema"))
    if (strict := get_bool(fmt, "strict", "text.format.strict")) is not None:
        target.json_schema.strict = strict


def _read_reasoning(body: Json, request: Request) -> bool:
    """`reasoning.effort` as the chat request's `reasoning_effort`; whether summaries were asked for."""
    reasoning = get_object(body, "reasoning", "reasoning")
    if reasoning is None:
        return False
    if (effort := get_enum(reasoning, "effort", "reasoning.effort", EFFORTS)) is not None:
        request.reasoning_effort = effort
    summary = get_str(reasoning, "summary", "reasoning.summary") or get_str(
        reasoning, "generate_summary", "reasoning.generate_summary"
    )
    if summary is None:
        return False
    if summary not in SUMMARIES:
        raise InvalidRequest(
            "`reasoning.summary` must be `auto`, `concise` or `detailed`.",
            param="reasoning.summary",
            code="invalid_value",
        )
    # Readable thinking where the model would hide it; Claude's thinking is already a summary.
    request.anthropic.thinking.display = chat_pb2.THINKING_DISPLAY_SUMMARIZED
    return True


def _echo(body: Json) -> Json:
    """What the response object repeats of the request, with OpenAI's defaults."""
    reasoning = body.get("reasoning") or {}
    text = dict(body.get("text") or {})
    text.setdefault("format", {"type": "text"})
    text.setdefault("verbosity", "medium")
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": body.get("service_tier") or "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": text,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "user": body.get("user"),
    }


# --- tools ----------------------------------------------------------------------


@dataclass(slots=True)
class _Tools:
    """What reading the tools learns besides the core tools themselves."""

    custom: set[str] = field(default_factory=set)  # Claude names of free-form tools
    namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)  # the body param of each core tool


def _read_tools(body: Json, request: Request, report: CompatReport, tools: _Tools) -> None:
    """Function and custom tools as Claude tools (those inside a `namespace` under a flat name),
    web search as its server tool."""
    for k, tool in enumerate(get_list(body, "tools", "tools") or ()):
        param = f"tools[{k}]"
        if not isinstance(tool, dict):
            raise type_error(param, "an object")
        kind = get_str(tool, "type", f"{param}.type")
        if kind in ("function", "custom"):
            _read_tool(tool, kind, param, request, report, tools)
        elif kind == "namespace":
            _read_namespace(tool, param, request, report, tools)
        elif kind in WEB_SEARCH_TOOLS:
            _web_search(tool, request.web_search_options, param)
        else:
            report.drop(param, f"the `{kind}` tool has no Claude equivalent here")
    if "tool_choice" in body and body["tool_choice"] is not None:
        _read_tool_choice(body["tool_choice"], request, report)


def _read_tool(
    tool: Json, kind: str, param: str, request: Request, report: CompatReport, tools: _Tools, namespace: str = ""
) -> None:
    name = get_str(tool, "name", f"{param}.name")
    if not name:
        raise InvalidRequest(f"`{param}.name` is required.", param=f"{param}.name", code="missing_required_parameter")
    flat = flat_name(namespace, name) if namespace else name
    if namespace:
        tools.namespaces[flat] = (namespace, name)
    out = request.tools.add(type=chat_pb2.TOOL_TYPE_FUNCTION)
    tools.params.append(param)
    out.function.name = flat
    out.function.description = get_str(tool, "description", f"{param}.description") or ""
    if kind == "function":
        if (schema := get_object(tool, "parameters", f"{param}.parameters")) is not None:
            out.function.parameters.CopyFrom(to_struct(schema, f"{param}.parameters"))
        if (strict := get_bool(tool, "strict", f"{param}.strict")) is not None:
            out.function.strict = strict
    else:
        tools.custom.add(flat)
        _custom_tool(tool, out.function, param, report)


def _read_namespace(tool: Json, param: str, request: Request, report: CompatReport, tools: _Tools) -> None:
    """A `namespace` tool (Codex's `multi_agent_v1`, say): each function or custom tool in it becomes a
    Claude tool named ``flat_name(namespace, name)``, its description led by the namespace's; calls
    come back under the namespace and name the client used."""
    namespace = get_str(tool, "name", f"{param}.name")
    if not namespace:
        raise InvalidRequest(f"`{param}.name` is required.", param=f"{param}.name", code="missing_required_parameter")
    about = get_str(tool, "description", f"{param}.description") or ""
    for j, inner in enumerate(get_list(tool, "tools", f"{param}.tools") or ()):
        where = f"{param}.tools[{j}]"
        if not isinstance(inner, dict):
            raise type_error(where, "an object")
        kind = get_str(inner, "type", f"{where}.type")
        if kind not in ("function", "custom"):
            report.drop(where, f"the `{kind}` tool has no Claude equivalent here")
            continue
        _read_tool(inner, kind, where, request, report, tools, namespace)
        function = request.tools[-1].function
        if about:
            function.description = f"[{namespace}: {about}] {function.description}".rstrip()


def flat_name(namespace: str, name: str) -> str:
    """A namespaced tool's name as Claude sees it: `namespace__name`, within Claude's rules for tool
    names (letters, digits, `_` and `-`, at most 64); anything else is replaced, and a name that
    would be too long keeps its start and gets a short hash, so distinct tools stay distinct."""
    joined = TOOL_NAME_UNSAFE.sub("_", f"{namespace}__{name}")
    if len(joined) <= MAX_TOOL_NAME:
        return joined
    digest = hashlib.sha256(f"{namespace}\0{name}".encode()).hexdigest()[:10]
    return f"{joined[: MAX_TOOL_NAME - 11]}_{digest}"


def _custom_tool(tool: Json, function: chat_pb2.FunctionDefinition, param: str, report: CompatReport) -> None:
    """A free-form tool: one string property; a grammar goes into the description for the model to follow."""
    function.parameters.CopyFrom(to_struct(CUSTOM_SCHEMA, param))
    fmt = get_object(tool, "format", f"{param}.format") or {"type": "text"}
    kind = get_str(fmt, "type", f"{param}.format.type")
    if kind == "grammar":
        syntax = get_str(fmt, "syntax", f"{param}.format.syntax") or "lark"
        definition = get_str(fmt, "definition", f"{param}.format.definition") or ""
        function.description += f"\n\nThe `{CUSTOM_INPUT}` text must follow this {syntax} grammar:\n{definition}"
        report.adjust(f"{param}.format", "Claude follows the grammar from the tool description; it is not enforced")
    elif kind != "text":
        raise InvalidRequest(
            f"`{param}.format.type` must be `text` or `grammar`.", param=f"{param}.format.type", code="invalid_value"
        )


def _web_search(tool: Json, options: chat_pb2.WebSearchOptions, param: str) -> None:
    options.search_context_size = get_str(tool, "search_context_size", f"{param}.search_context_size") or ""
    if (where := get_object(tool, "user_location", f"{param}.user_location")) is not None:
        for key in ("city", "country", "region", "timezone"):
            setattr(options.user_location, key, get_str(where, key, f"{param}.user_location.{key}") or "")
    else:
        options.SetInParent()


def _read_tool_choice(choice: Any, request: Request, report: CompatReport) -> None:
    if isinstance(choice, str):
        mode = get_enum({"tool_choice": choice}, "tool_choice", "tool_choice", TOOL_CHOICE_MODES)
        request.tool_choice.mode = mode or chat_pb2.TOOL_CHOICE_MODE_AUTO
        return
    if not isinstance(choice, dict):
        raise type_error("tool_choice", "a string or an object")
    kind = get_str(choice, "type", "tool_choice.type")
    if kind in ("function", "custom"):
        name = get_str(choice, "name", "tool_choice.name")
        if not name:
            raise InvalidRequest(
                "`tool_choice.name` is required.", param="tool_choice.name", code="missing_required_parameter"
            )
        namespace = get_str(choice, "namespace", "tool_choice.namespace")
        request.tool_choice.function_name = flat_name(namespace, name) if namespace else name
    elif kind == "allowed_tools":
        allowed = get_str(choice, "mode", "tool_choice.mode") or "auto"
        request.tool_choice.mode = TOOL_CHOICE_MODES.get(allowed, chat_pb2.TOOL_CHOICE_MODE_AUTO)
        report.adjust("tool_choice", "Claude may call any tool sent; the allowed subset is not enforced")
    else:
        report.drop("tool_choice", f"`{kind}` names a tool Claude is not sent")


# --- input items ----------------------------------------------------------------


def items_from_input(value: Any) -> list[Json]:
    """The input as items with ids, as `input_items` lists them (a string is one user message)."""
    if isinstance(value, str):
        return [
            {
                "id": new_id("msg_"),
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": value}],
            }
        ]
    if not isinstance(value, list):
        if value is None:
            raise InvalidRequest("You must provide `input`.", param="input", code="missing_required_parameter")
        raise type_error("input", "a string or an array of items")
    items: list[Json] = []
    for i, given in enumerate(value):
        if not isinstance(given, dict):
            raise type_error(f"input[{i}]", "an object")
        item = dict(given)
        if "type" not in item and "role" in item:
            item["type"] = "message"  # the short form: {"role", "content"}
        if isinstance(item.get("content"), str) and item.get("type") == "message":
            kind = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": item["content"]}]
        if not item.get("id"):  # `input_items` lists every item with an id
            item["id"] = new_id(ITEM_PREFIXES.get(str(item.get("type")), "item_"))
        items.append(item)
    return items


def messages_from_items(
    items: list[Json],
    custom: frozenset[str],
    report: CompatReport,
    *,
    offset: int = 0,
    sources: list[int] | None = None,
) -> list[chat_pb2.ChatMessage]:
    """Items as chat messages: consecutive assistant-side items (text, reasoning, calls) are one message.

    ``offset`` shifts the index in ``param`` names so that errors name the client's own `input[i]`
    when earlier (stored) items come first; ``sources``, when given, gets the (shifted) index of the
    item each message starts at, so that later errors about a message can name its item."""
    out: list[chat_pb2.ChatMessage] = []
    assistant: chat_pb2.ChatMessage | None = None
    for i, item in enumerate(items):
        param = f"input[{i + offset}]"
        kind = item.get("type")
        if kind in ("reasoning", "function_call", "custom_tool_call", "compaction") or (
            kind == "message" and item.get("role") == "assistant"
        ):
            if assistant is None:
                assistant = chat_pb2.ChatMessage(role=chat_pb2.ROLE_ASSISTANT)
                out.append(assistant)
                if sources is not None:
                    sources.append(i + offset)
            _assistant_item(item, kind, assistant, param, report)
            continue
        assistant = None
        if sources is not None and kind in ("message", "function_call_output", "custom_tool_call_output"):
            sources.append(i + offset)
        if kind == "message":
            out.append(_input_message(item, param))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            out.append(_tool_output(item, param))
        elif kind == "item_reference":
            raise InvalidRequest(
                f"`{param}`: item references are not supported; "
                "send the item, or continue with `previous_response_id`.",
                param=param,
                code="unsupported_parameter",
            )
        elif isinstance(kind, str):
            report.drop(param, f"`{kind}` items have no Claude equivalent")
        else:
            raise InvalidRequest(
                f"`{param}.type` is required.", param=f"{param}.type", code="missing_required_parameter"
            )
    return out


def _assistant_item(item: Json, kind: str, message: chat_pb2.ChatMessage, param: str, report: CompatReport) -> None:
    if kind == "message":
        for j, part in enumerate(get_list(item, "content", f"{param}.content") or ()):
            if not isinstance(part, dict):
                raise type_error(f"{param}.content[{j}]", "an object")
            if part.get("type") == "refusal":
                message.refusal += get_str(part, "refusal", f"{param}.content[{j}].refusal") or ""
            else:
                message.content.add(text=get_str(part, "text", f"{param}.content[{j}].text") or "")
    elif kind == "compaction":
        message.content.add(text=COMPACTED + compaction_summary(item, param))
    elif kind == "reasoning":
        block = reasoning_block(item, param)
        if block is None:
            report.drop(param, "a reasoning item without chatgate's `encrypted_content` cannot be sent back to Claude")
        else:
            message.thinking_blocks.append(block)
    else:
        call_id = get_str(item, "call_id", f"{param}.call_id")
        name = get_str(item, "name", f"{param}.name")
        if name and (namespace := get_str(item, "namespace", f"{param}.namespace")):
            name = flat_name(namespace, name)  # the name Claude was given for it
        if not call_id or not name:
            missing = "call_id" if not call_id else "name"
            raise InvalidRequest(
                f"`{param}.{missing}` is required.", param=f"{param}.{missing}", code="missing_required_parameter"
            )
        if kind == "function_call":
            arguments = get_str(item, "arguments", f"{param}.arguments") or ""
        else:
            arguments = orjson.dumps({CUSTOM_INPUT: get_str(item, "input", f"{param}.input") or ""}).decode()
        message.tool_calls.add(id=call_id, type=chat_pb2.TOOL_TYPE_FUNCTION).function.CopyFrom(
            chat_pb2.FunctionCall(name=name, arguments=arguments)
        )


def _input_message(item: Json, param: str) -> chat_pb2.ChatMessage:
    role = item.get("role")
    if role not in ROLES:
        raise InvalidRequest(
            f"`{param}.role` must be `user`, `system`, `developer` or `assistant`.",
            param=f"{param}.role",
            code="invalid_value",
        )
    message = chat_pb2.ChatMessage(role=ROLES[role])
    content = item.get("content")
    if not isinstance(content, list):
        raise type_error(f"{param}.content", "a string or an array of content parts")
    for j, part in enumerate(content):
        message.content.append(part_from_json(part, f"{param}.content[{j}]"))
    return message


def _tool_output(item: Json, param: str) -> chat_pb2.ChatMessage:
    call_id = get_str(item, "call_id", f"{param}.call_id")
    if not call_id:
        raise InvalidRequest(
            f"`{param}.call_id` is required.", param=f"{param}.call_id", code="missing_required_parameter"
        )
    message = chat_pb2.ChatMessage(role=chat_pb2.ROLE_TOOL, tool_call_id=call_id)
    output = item.get("output")
    if isinstance(output, str):
        message.content.add(text=output)
    elif isinstance(output, list):
        for j, part in enumerate(output):
            message.content.append(part_from_json(part, f"{param}.output[{j}]"))
    else:
        raise type_error(f"{param}.output", "a string or an array of content parts")
    return message


def part_from_json(part: Any, param: str) -> chat_pb2.ContentPart:
    """A Responses content part (`input_text`, `input_image`, `input_file`) as a chat part."""
    if not isinstance(part, dict):
        raise type_error(param, "an object")
    kind = get_str(part, "type", f"{param}.type")
    out = chat_pb2.ContentPart()
    if kind in ("input_text", "output_text", "text"):
        out.text = get_str(part, "text", f"{param}.text") or ""
    elif kind == "input_image":
        url = get_str(part, "image_url", f"{param}.image_url")
        if not url:
            why = "uploaded files are not served" if part.get("file_id") else "it is required"
            raise InvalidRequest(
                f"`{param}.image_url` is missing: {why}.", param=f"{param}.image_url", code="invalid_value"
            )
        out.image_url.url = url
        detail = get_enum(part, "detail", f"{param}.detail", IMAGE_DETAILS)
        out.image_url.detail = detail or chat_pb2.IMAGE_DETAIL_UNSPECIFIED
    elif kind == "input_file":
        data = get_str(part, "file_data", f"{param}.file_data")
        if not data:
            raise InvalidRequest(
                f"`{param}.file_data` is required: uploaded files and file URLs are not served.",
                param=f"{param}.file_data",
                code="invalid_value",
            )
        out.file.file_data = data
        out.file.filename = get_str(part, "filename", f"{param}.filename") or ""
    else:
        raise InvalidRequest(f"Unknown content part type `{kind}`.", param=f"{param}.type", code="invalid_value")
    return out


# --- reasoning round trip ---------------------------------------------------------


def reasoning_content(block: chat_pb2.ThinkingBlock) -> str:
    """A thinking block as a reasoning item's `encrypted_content`: opaque to the client, and
    needing no memory at the gateway. Claude's signature protects it; a changed block fails upstream."""
    if block.type == chat_pb2.THINKING_BLOCK_TYPE_REDACTED:
        data: Json = {"r": block.data}
    else:
        data = {"t": block.thinking, "s": block.signature}
    return REASONING_PREFIX + base64.urlsafe_b64encode(orjson.dumps(data)).decode()


def reasoning_block(item: Json, param: str) -> chat_pb2.ThinkingBlock | None:
    """The thinking block a reasoning item carries; None when it carries none of ours (another
    provider's encrypted reasoning, or summaries only)."""
    content = get_str(item, "encrypted_content", f"{param}.encrypted_content")
    if not content or not content.startswith(REASONING_PREFIX):
        return None
    try:
        data = orjson.loads(base64.urlsafe_b64decode(content[len(REASONING_PREFIX) :]))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("r"), str):
        return chat_pb2.ThinkingBlock(type=chat_pb2.THINKING_BLOCK_TYPE_REDACTED, data=data["r"])
    if isinstance(data, dict) and isinstance(data.get("t"), str) and isinstance(data.get("s"), str):
        return chat_pb2.ThinkingBlock(
            type=chat_pb2.THINKING_BLOCK_TYPE_THINKING, thinking=data["t"], signature=data["s"]
        )
    raise InvalidRequest(
        f"`{param}.encrypted_content` is damaged; send reasoning items back exactly as they were returned.",
        param=f"{param}.encrypted_content",
        code="invalid_encrypted_content",
    )


# --- compaction ---------------------------------------------------------------------------

COMPACT_FIELDS = frozenset({"model", "input", "instructions", "previous_response_id", "compatibility"})
# The instruction a compaction sends after the conversation; Claude's answer is the summary.
SUMMARIZE = (
    "Summarize this conversation so far so that it can continue from the summary alone, without the "
    "turns themselves: the goal, the decisions made, what was done and found (files, commands, results, "
    "errors), what remains to do and anything the user asked to keep in mind. Write only the summary."
)


def compaction_item(summary: str) -> Json:
    """A `compaction` item holding Claude's summary: opaque to the client (versioned like reasoning's
    `encrypted_content`), and needing no memory at the gateway."""
    content = COMPACTION_PREFIX + base64.urlsafe_b64encode(orjson.dumps({"s": summary})).decode()
    return {"id": new_id("cmp_"), "type": "compaction", "encrypted_content": content}


def compaction_summary(item: Json, param: str) -> str:
    content = get_str(item, "encrypted_content", f"{param}.encrypted_content") or ""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(content.removeprefix(COMPACTION_PREFIX)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        data = None
    if not content.startswith(COMPACTION_PREFIX) or not isinstance(data, dict) or not isinstance(data.get("s"), str):
        raise InvalidRequest(
            f"`{param}.encrypted_content` is not a compaction this gateway made; send compaction items back "
            "exactly as they were returned.",
            param=f"{param}.encrypted_content",
            code="invalid_encrypted_content",
        )
    return str(data["s"])


def user_messages(items: list[Json]) -> list[Json]:
    """What a compaction keeps verbatim: the user's own messages, in order (OpenAI's rule)."""
    return [item for item in items if item.get("type") == "message" and item.get("role") == "user"]


def compact_request_from_json(body: Any, *, mode: chat_pb2.Compatibility | None = None) -> ResponsesRequest:
    """`POST /v1/responses/compact`: the conversation to compact (its input and stored chain)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    kept = {k: v for k, v in body.items() if k in COMPACT_FIELDS}
    if kept.get("input") is None:
        kept["input"] = []  # a stored chain alone may be compacted
    parsed = request_from_json({**kept, "store": False, "stream": False}, mode=mode)
    parsed.ignored = sorted(
        set(body) - COMPACT_FIELDS - {"prompt_cache_key", "prompt_cache_retention", "prompt_cache_options"}
    )
    return parsed


def summarizing(request: Request) -> Request:
    """The core request that asks Claude for the summary: the conversation, then the instruction."""
    asking = Request()
    asking.CopyFrom(request)
    asking.ClearField("response_format")
    asking.ClearField("stream_options")
    if asking.tools:  # kept, as the API wants the tools of the calls in the conversation, but not called
        asking.tool_choice.mode = chat_pb2.TOOL_CHOICE_MODE_NONE
    asking.messages.add(role=chat_pb2.ROLE_USER).content.add(text=SUMMARIZE)
    return asking


# --- error and report params in the Responses API's own names --------------------------------

# Core (Chat Completions) names whose Responses name differs; the longest prefix that matches wins.
RENAMED = (
    ("max_completion_tokens", "max_output_tokens"),
    ("max_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning.effort"),
    ("response_format.json_schema.schema", "text.format.schema"),
    ("response_format.json_schema", "text.format"),
    ("response_format", "text.format"),
    ("web_search_options", "tools"),
    ("thinking", "reasoning"),
)
INDEXED = re.compile(r"^(messages|tools)\[(\d+)\](.*)$")


def responses_param(param: str | None, messages: list[int | None], tools: list[str]) -> str | None:
    """``param`` as a Responses client knows it: `input[3]` for the message built from that item
    (`instructions` for the instructions, `previous_response_id` for a stored one), the tool as it
    stood in `tools` (inside its namespace, too), `max_output_tokens` for the output limit..."""
    if not param:
        return param
    match = INDEXED.match(param)
    if match is not None:
        kind, index, rest = match.group(1), int(match.group(2)), match.group(3)
        if kind == "tools":
            if index >= len(tools):
                return "tools"
            rest = rest.removeprefix(".function")  # Responses tools have no `function` level
            return tools[index] + rest
        source = messages[index] if index < len(messages) else -1
        if source is None:
            return "instructions"
        return f"input[{source}]" if source >= 0 else "previous_response_id"
    if param == "messages":
        return "input"
    for old, new in RENAMED:
        if param == old or param.startswith(old + "."):
            return new + param[len(old) :]
    return param


def responses_message(message: str) -> str:
    """An error message's backquoted Chat Completions names in the Responses API's words."""
    if "`" not in message:
        return message
    for old, new in RENAMED[:3]:
        message = message.replace(f"`{old}`", f"`{new}`")
    return message.replace("`messages`", "`input`")

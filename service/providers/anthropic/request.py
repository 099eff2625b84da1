"""OpenAI-shaped request (chatgate.v1) -> Anthropic Messages API body. Pure functions.

Each rule of the request table in docs/mapping.md is one small function here; anything Claude
cannot honour exactly goes through the call's ``CompatReport``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatgate.v1 import chat_pb2, chat_service_pb2
from service.codecs.fields import struct_to_json
from service.core import CompatReport, ModelInfo, NativeRequest, ProviderCall
from service.core.errors import InvalidRequest

from .catalog import UPSTREAM_EFFORTS, traits_of

Request = chat_service_pb2.ChatCompletionRequest
JsonObject = dict[str, Any]

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# The forced tool that carries JSON-mode output on models without native
# structured output; its input becomes the message content.
JSON_TOOL_NAME = "chatgate_json_response"
EMPTY_SCHEMA: JsonObject = {"type": "object", "properties": {}}
# Anthropic keeps cached prefixes 5 minutes or 1 hour. OpenAI's TTLs are minimum
# lifetimes: 30 minutes needs the hour; 12 hours gets the longest there is.
CACHE_TTLS: dict[int, tuple[str, str]] = {
    chat_pb2.CACHE_TTL_FIVE_MINUTES: ("5m", ""),
    chat_pb2.CACHE_TTL_ONE_HOUR: ("1h", ""),
    chat_pb2.CACHE_TTL_THIRTY_MINUTES: ("1h", "30m is kept 1h, the shortest Anthropic TTL that lasts that long"),
    chat_pb2.CACHE_TTL_TWELVE_HOURS: ("1h", "12h is kept 1h, the longest Anthropic TTL"),
}
MAX_CACHE_BREAKPOINTS = 4  # Anthropic's limit per request, automatic caching included
THINKING_MIN_BUDGET = 1024
EFFORT_NAMES = {
    chat_pb2.REASONING_EFFORT_MINIMAL: "minimal",
    chat_pb2.REASONING_EFFORT_LOW: "low",
    chat_pb2.REASONING_EFFORT_MEDIUM: "medium",
    chat_pb2.REASONING_EFFORT_HIGH: "high",
    chat_pb2.REASONING_EFFORT_XHIGH: "xhigh",
    chat_pb2.REASONING_EFFORT_MAX: "max",
}
DISPLAYS = {chat_pb2.THINKING_DISPLAY_SUMMARIZED: "summarized", chat_pb2.THINKING_DISPLAY_OMITTED: "omitted"}
SERVICE_TIERS = {"auto": "auto", "default": "standard_only", "priority": "auto"}
FAST_MODE_BETA = "fast-mode-2026-02-01"
WEB_SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search"}
SAMPLING_DEFAULTS = {"temperature": 1.0, "top_p": 1.0}
# The `anthropic-version` values whose rules the translation knows; 2026-10-21 removed the
# sampling parameters (and documents in assistant turns and citations on user text, which a
# translated request never holds).
API_VERSIONS = ("2023-06-01", "2026-10-21")
DEFAULT_API_VERSION = "2023-06-01"
SAMPLING_REMOVED = "2026-10-21"

# Request fields with no Claude equivalent: dropped (lenient) or rejected (strict).
UNSUPPORTED = (
    "seed",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "store",
    "verbosity",
    "prompt_cache_key",
    "prompt_cache_retention",
    "logit_bias",
    "metadata",
    "audio",
    "prediction",
    "moderation",
)


@dataclass(slots=True)
class AnthropicRequest:
    """The upstream body plus what the response mapping must know about it."""

    body: JsonObject
    betas: list[str] = field(default_factory=list)
    json_tool: str | None = None


def to_anthropic(call: ProviderCall, *, stream: bool, version: str = DEFAULT_API_VERSION) -> AnthropicRequest:
    """The upstream body for ``call``, under the rules of API ``version`` (the `anthropic-version`
    the provider sends)."""
    request, model, report = call.request, call.model, call.report
    assert not isinstance(request, NativeRequest), "a native call is relayed, never translated"
    system, messages = map_messages(request.messages, report)
    body: JsonObject = {"model": model.upstream_id, "messages": messages}
    if system:
        body["system"] = system
    body["max_tokens"] = max_tokens(request, model, report)
    map_sampling(request, model, report, body, version)
    stop = stop_sequences(request.stop, report)
    if stop:
        body["stop_sequences"] = stop
    if stream:
        body["stream"] = True
    map_end_user(request, report, body)
    mapped = AnthropicRequest(body, betas=request.anthropic.betas[:])
    map_tools(request, body)
    map_web_search(request, report, body)
    map_thinking(request, model, report, body)
    map_forced_tools(model, report, body)
    map_response_format(request, model, report, mapped)
    map_caching(request, report, body)
    map_service_tier(request, model, report, mapped)
    report_unsupported(request, report)
    return mapped


def map_end_user(request: Request, report: CompatReport, body: JsonObject) -> None:
    """`safety_identifier` (OpenAI's newer name) wins over `user`; either becomes `metadata.user_id`."""
    if request.safety_identifier:
        if request.user and request.user != request.safety_identifier:
            report.drop("user", "`safety_identifier` is sent as metadata.user_id instead")
        body["metadata"] = {"user_id": request.safety_identifier}
    elif request.user:
        body["metadata"] = {"user_id": request.user}


# --- messages ---------------------------------------------------------------


# Roles as plain ints, read once: `chat_pb2.ROLE_USER` is two lookups, per message.
USER, ASSISTANT, TOOL = chat_pb2.ROLE_USER, chat_pb2.ROLE_ASSISTANT, chat_pb2.ROLE_TOOL
SYSTEM_ROLES = frozenset((chat_pb2.ROLE_SYSTEM, chat_pb2.ROLE_DEVELOPER))


def map_messages(
    messages: Sequence[chat_pb2.ChatMessage], report: CompatReport
) -> tuple[list[JsonObject], list[JsonObject]]:
    """Hoists system and developer messages, in order, into ``system`` blocks and
    turns the rest into alternating Anthropic turns. Consecutive turns of one
    role (for example several tool results) are merged into one turn."""
    system: list[JsonObject] = []
    turns: list[JsonObject] = []
    # slices: a loop over a protobuf repeated field costs an IndexError (docs/performance.md)
    for i, message in enumerate(messages[:]):
        role = message.role
        if message.name:
            report.drop(f"messages[{i}].name", "Claude has no participant names")
        if role == USER:
            blocks = content_blocks(message.content, i)
            if not blocks:
                raise InvalidRequest(f"messages[{i}] has no content.", param=f"messages[{i}].content")
            append_turn(turns, "user", blocks)
        elif role in SYSTEM_ROLES:
            system.extend(system_blocks(message, i))
        elif role == ASSISTANT:
            blocks = assistant_blocks(message, i)
            if not blocks:
                report.drop(f"messages[{i}]", "an assistant message with no content or tool calls")
                continue
            append_turn(turns, "assistant", blocks)
        elif role == TOOL:
            append_turn(turns, "user", [tool_result_block(message, i)])
        else:
            raise InvalidRequest(f"messages[{i}] has an unknown role.", param=f"messages[{i}].role")
    if not turns:
        raise InvalidRequest(
            "The conversation needs at least one user, assistant or tool message besides system messages.",
            param="messages",
        )
    return system, turns


def append_turn(turns: list[JsonObject], role: str, blocks: list[JsonObject]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def system_blocks(message: chat_pb2.ChatMessage, i: int) -> list[JsonObject]:
    blocks = content_blocks(message.content, i)
    for j, block in enumerate(blocks):
        if block["type"] != "text":
            raise InvalidRequest(
                "System and developer messages may only contain text.", param=f"messages[{i}].content[{j}]"
            )
    return blocks


def content_blocks(parts: Sequence[chat_pb2.ContentPart], i: int) -> list[JsonObject]:
    """Maps the content parts of ``messages[i]`` to Anthropic blocks, dropping empty text (which
    Claude rejects). Param names are spelled out only when needed: most parts are plain text."""
    blocks: list[JsonObject] = []
    for j, part in enumerate(parts[:]):  # slices: see map_messages
        if part.WhichOneof("part") == "text":
            text = part.text
            if not text:
                continue
            block: JsonObject | None = {"type": "text", "text": text}
        else:
            block = content_block(part, f"messages[{i}].content[{j}]")
        if block is None:
            continue
        if part.HasField("cache_control"):
            block["cache_control"] = cache_control(part.cache_control, f"messages[{i}].content[{j}].cache_control")
        blocks.append(block)
    return blocks


def content_block(part: chat_pb2.ContentPart, param: str) -> JsonObject | None:
    kind = part.WhichOneof("part")
    if kind == "text":
        return {"type": "text", "text": part.text} if part.text else None
    if kind == "image_url":
        return image_block(part.image_url.url, f"{param}.image_url")
    if kind == "file":
        return document_block(part.file, f"{param}.file")
    if kind == "input_audio":
        raise InvalidRequest("Claude does not accept audio input.", param=f"{param}.input_audio")
    raise InvalidRequest("A content part is empty.", param=param)


def image_block(url: str, param: str) -> JsonObject:
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, param)
        if media_type not in IMAGE_MEDIA_TYPES:
            raise InvalidRequest(
                f"Image type `{media_type}` is not supported; use JPEG, PNG, GIF or WebP.", param=param
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        # Passed by reference: Anthropic fetches it; the gateway never does (no SSRF surface).
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest("An image URL must be a `data:` URL or an http(s) URL.", param=param)


def document_block(file: chat_pb2.FileInput, param: str) -> JsonObject:
    if file.file_id:
        raise InvalidRequest("Uploaded file ids are not supported; send the file as `file_data`.", param=param)
    if not file.file_data:
        raise InvalidRequest("A file part needs `file_data`.", param=param)
    media_type, data = parse_data_url(file.file_data, f"{param}.file_data")
    if media_type == "application/pdf":
        source: JsonObject = {"type": "base64", "media_type": media_type, "data": data}
    elif media_type == "text/plain":
        text = base64.b64decode(data).decode("utf-8", "replace")
        source = {"type": "text", "media_type": media_type, "data": text}
    else:
        raise InvalidRequest(f"File type `{media_type}` is not supported; use PDF or plain text.", param=param)
    block: JsonObject = {"type": "document", "source": source}
    if file.filename:
        block["title"] = file.filename
    return block


def parse_data_url(url: str, param: str) -> tuple[str, str]:
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise InvalidRequest("A data URL must have the form `data:<type>;base64,<data>`.", param=param)
    media_type = header[len("data:") : -len(";base64")].strip().lower()
    try:
        base64.b64decode(data[:64].ljust(4 * ((min(len(data), 64) + 3) // 4), "="), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("The data URL's payload is not valid base64.", param=param) from None
    return media_type, data


def cache_control(control: chat_pb2.CacheControl, param: str) -> JsonObject:
    # Marked with the request path and the TTL as asked; `map_caching` maps the TTL, reports
    # changes by path, and removes the path before the body is sent.
    out: JsonObject = {"type": "ephemeral", _PARAM: param}  # Anthropic's only cache type
    if control.ttl:
        out["ttl"] = control.ttl
    return out


_PARAM = "__param__"  # carries a breakpoint's request path until `map_caching` removes it


def assistant_blocks(message: chat_pb2.ChatMessage, i: int) -> list[JsonObject]:
    """Thinking first and verbatim (Claude verifies signatures), then text, then tool calls."""
    thinking, calls = message.thinking_blocks, message.tool_calls
    blocks = (
        [thinking_block(b, f"messages[{i}].thinking_blocks[{k}]") for k, b in enumerate(thinking[:])]
        if thinking
        else []
    )
    blocks += content_blocks(message.content, i)
    if calls:
        blocks += [tool_use_block(call, f"messages[{i}].tool_calls[{k}]") for k, call in enumerate(calls[:])]
    return blocks


def thinking_block(block: chat_pb2.ThinkingBlock, param: str) -> JsonObject:
    if block.type == chat_pb2.THINKING_BLOCK_TYPE_REDACTED:
        return {"type": "redacted_thinking", "data": block.data}
    return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}


def tool_use_block(call: chat_pb2.ToolCall, param: str) -> JsonObject:
    if not call.id:
        raise InvalidRequest("A tool call needs an `id`.", param=f"{param}.id")
    if not call.function.name:
        raise InvalidRequest("A tool call needs a function name.", param=f"{param}.function.name")
    return {
        "type": "tool_use",
        "id": call.id,
        "name": call.function.name,
        "input": parse_arguments(call.function.arguments, f"{param}.function.arguments"),
    }


def parse_arguments(arguments: str, param: str) -> JsonObject:
    """OpenAI sends arguments as JSON text; Claude wants the object. ``""`` means ``{}``."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest("Tool call arguments are not valid JSON.", param=param) from None
    if not isinstance(value, dict):
        raise InvalidRequest("Tool call arguments must be a JSON object.", param=param)
    return value


def tool_result_block(message: chat_pb2.ChatMessage, i: int) -> JsonObject:
    if not message.tool_call_id:
        raise InvalidRequest("A tool message needs `tool_call_id`.", param=f"messages[{i}].tool_call_id")
    block: JsonObject = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = content_blocks(message.content, i)
    if content:
        only_text = all(b["type"] == "text" and "cache_control" not in b for b in content)
        block["content"] = "".join(b["text"] for b in content) if only_text else content
    return block


# --- generation settings ----------------------------------------------------


def max_tokens(request: Request, model: ModelInfo, report: CompatReport) -> int:
    """OpenAI's "no limit" is the model's maximum output, never a small default."""
    if request.HasField("max_completion_tokens"):
        wanted, name = request.max_completion_tokens, "max_completion_tokens"
    elif request.HasField("max_tokens"):
        wanted, name = request.max_tokens, "max_tokens"
    else:
        return model.max_output_tokens
    if wanted > model.max_output_tokens:
        report.adjust(name, f"lowered to {model.id}'s maximum output of {model.max_output_tokens}")
        return model.max_output_tokens
    return wanted


def map_sampling(
    request: Request, model: ModelInfo, report: CompatReport, body: JsonObject, version: str = DEFAULT_API_VERSION
) -> None:
    if version >= SAMPLING_REMOVED:
        drop_sampling(request, report, "API version " + version)
        return
    if traits_of(model).sampling == "none":
        drop_sampling(request, report, model.id)
        return
    if request.HasField("temperature"):
        if request.temperature > 1.0:
            report.adjust("temperature", "clamped to 1, Claude's maximum")
            body["temperature"] = 1.0
        else:
            body["temperature"] = request.temperature
    if request.HasField("top_p"):
        if traits_of(model).sampling == "exclusive" and "temperature" in body:
            report.drop("top_p", f"{model.id} accepts only one of temperature and top_p")
        else:
            body["top_p"] = request.top_p
    if request.HasField("top_k"):
        body["top_k"] = request.top_k


def drop_sampling(request: Request, report: CompatReport, refuser: str) -> None:
    """The upstream rejects sampling parameters: a default value is left out quietly (it changes
    nothing); any other value is dropped and reported, or rejected when strict."""
    for name in ("temperature", "top_p", "top_k"):
        if request.HasField(name) and getattr(request, name) != SAMPLING_DEFAULTS.get(name):
            report.drop(name, f"{refuser} does not accept sampling parameters")


def stop_sequences(stop: Sequence[str], report: CompatReport) -> list[str]:
    kept: list[str] = []
    if not stop:  # most requests: not even a slice
        return kept
    for k, sequence in enumerate(stop[:]):
        if sequence.strip():
            kept.append(sequence)
        else:
            report.drop(f"stop[{k}]", "Claude rejects whitespace-only stop sequences")
    return kept


def map_tools(request: Request, body: JsonObject) -> None:
    if request.tools:
        body["tools"] = [tool_definition(tool, f"tools[{k}]") for k, tool in enumerate(request.tools[:])]
    choice = tool_choice(request, body)
    if choice is not None:
        body["tool_choice"] = choice


def tool_definition(tool: chat_pb2.Tool, param: str) -> JsonObject:
    function = tool.function
    if not function.name:
        raise InvalidRequest("A tool needs a function name.", param=f"{param}.function.name")
    out: JsonObject = {"name": function.name}
    if function.description:
        out["description"] = function.description
    out["input_schema"] = (
        struct_to_json(function.parameters, f"{param}.function.parameters")
        if function.HasField("parameters")
        else EMPTY_SCHEMA
    )
    if function.HasField("strict") and function.strict:
        out["strict"] = True
    if tool.HasField("cache_control"):
        out["cache_control"] = cache_control(tool.cache_control, f"{param}.cache_control")
    return out


def tool_choice(request: Request, body: JsonObject) -> JsonObject | None:
    kind = request.tool_choice.WhichOneof("choice") if request.HasField("tool_choice") else None
    choice: JsonObject | None = None
    if kind == "function_name":
        choice = {"type": "tool", "name": request.tool_choice.function_name}
    elif kind == "mode" and request.tool_choice.mode != chat_pb2.TOOL_CHOICE_MODE_UNSPECIFIED:
        choice = {
            "type": {
                chat_pb2.TOOL_CHOICE_MODE_AUTO: "auto",
                chat_pb2.TOOL_CHOICE_MODE_NONE: "none",
                chat_pb2.TOOL_CHOICE_MODE_REQUIRED: "any",
            }[request.tool_choice.mode]
        }
    if "tools" not in body:
        # `auto` (and `none`) with no tools asks nothing: OpenAI accepts it, and clients send it (Codex's
        # summarization turns). Only forcing a tool that is not there is an error.
        if choice is not None and choice["type"] not in ("none", "auto"):
            raise InvalidRequest("`tool_choice` needs `tools`.", param="tool_choice")
        return None
    if request.HasField("parallel_tool_calls") and not request.parallel_tool_calls:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return choice


def map_thinking(request: Request, model: ModelInfo, report: CompatReport, body: JsonObject) -> None:
    thinking = thinking_setting(request, model, report)
    if thinking is None:
        return
    body["thinking"] = thinking
    if thinking["type"] == "disabled":
        return
    if thinking["type"] == "enabled":
        fit_budget(body, model, report)
    display = DISPLAYS.get(request.anthropic.thinking.display)
    if display is None and traits_of(model).display == "omitted":
        display = "summarized"  # the client asked for reasoning: return it readable
    if display is not None:
        thinking["display"] = display
    apply_thinking_constraints(body, report)


def fit_budget(body: JsonObject, model: ModelInfo, report: CompatReport) -> None:
    """Claude counts thinking inside max_tokens: the budget must stay below it."""
    thinking = body["thinking"]
    budget = thinking["budget_tokens"]
    ceiling = model.max_output_tokens - THINKING_MIN_BUDGET  # keep room for the answer
    if budget > ceiling:
        if ceiling < THINKING_MIN_BUDGET:
            raise InvalidRequest(f"{model.id}'s output limit leaves no room for thinking.", param="max_tokens")
        report.adjust("reasoning_effort", f"the thinking budget is lowered to {ceiling} to fit {model.id}'s output")
        thinking["budget_tokens"] = budget = ceiling
    if body["max_tokens"] <= budget:
        # Keep the asked-for room for the answer.
        raised = min(model.max_output_tokens, budget + body["max_tokens"])
        report.adjust("max_tokens", f"raised to {raised} to hold the thinking budget of {budget}")
        body["max_tokens"] = raised


def thinking_setting(request: Request, model: ModelInfo, report: CompatReport) -> JsonObject | None:
    """The `thinking` object for the model's thinking style, from Anthropic's own setting
    (which wins) or OpenAI's `reasoning_effort`; None leaves the model's default."""
    asked = request.anthropic.thinking
    style = traits_of(model).thinking
    if asked.type == chat_pb2.THINKING_TYPE_DISABLED:
        return thinking_off(model, report, "thinking")
    if asked.type == chat_pb2.THINKING_TYPE_ADAPTIVE:
        if style in ("adaptive", "adaptive_only", "always"):
            return {"type": "adaptive"}
        if style == "none":
            report.drop("thinking", f"{model.id} does not support extended thinking")
            return None
        report.adjust("thinking", f"{model.id} has no adaptive thinking; a medium budget is used")
        return budget_thinking(model, "medium")
    if asked.type == chat_pb2.THINKING_TYPE_ENABLED:
        budget = asked.budget_tokens
        if budget < THINKING_MIN_BUDGET:
            raise InvalidRequest(
                f"`thinking.budget_tokens` must be at least {THINKING_MIN_BUDGET}.", param="thinking.budget_tokens"
            )
        if style in ("adaptive_only", "always"):
            report.adjust("thinking", f"{model.id} only thinks adaptively; the budget is not sent")
            return {"type": "adaptive"}
        if style == "none":
            report.drop("thinking", f"{model.id} does not support extended thinking")
            return None
        return {"type": "enabled", "budget_tokens": budget}
    if request.reasoning_effort == chat_pb2.REASONING_EFFORT_NONE:
        return thinking_off(model, report, "reasoning_effort")
    effort = EFFORT_NAMES.get(request.reasoning_effort)
    if effort is None:
        return None
    if style == "none":
        report.drop("reasoning_effort", f"{model.id} does not support extended thinking")
        return None
    if style == "budget":
        return budget_thinking(model, effort)
    return {"type": "adaptive", "effort": adaptive_effort(effort, model, report)}


def thinking_off(model: ModelInfo, report: CompatReport, param: str) -> JsonObject | None:
    style = traits_of(model).thinking
    if style == "always":
        report.adjust(param, f"{model.id} always thinks; thinking cannot be turned off")
        return None
    if style == "adaptive_only":
        return None  # thinking is off unless asked; these models reject an explicit `disabled`
    return {"type": "disabled"} if style != "none" else None


def adaptive_effort(effort: str, model: ModelInfo, report: CompatReport) -> str:
    """The model's effort level nearest to the asked one; a different level is reported."""
    offered = traits_of(model).efforts or ("high",)
    wanted = "low" if effort == "minimal" else effort
    if wanted in offered:
        if effort == "minimal":
            report.adjust("reasoning_effort", "minimal is sent as Claude's low effort")
        return wanted
    rank = UPSTREAM_EFFORTS.index(wanted)
    nearest = min(offered, key=lambda e: (abs(UPSTREAM_EFFORTS.index(e) - rank), -UPSTREAM_EFFORTS.index(e)))
    report.adjust("reasoning_effort", f"{model.id} has no {effort} effort; {nearest} is used")
    return nearest


def budget_thinking(model: ModelInfo, effort: str) -> JsonObject:
    return {"type": "enabled", "budget_tokens": traits_of(model).reasoning_budgets[effort]}


def apply_thinking_constraints(body: JsonObject, report: CompatReport) -> None:
    """Thinking requires default sampling and lets the model choose whether to call tools."""
    thinking = body["thinking"]
    if "effort" in thinking:  # adaptive: effort travels in output_config
        body.setdefault("output_config", {})["effort"] = thinking.pop("effort")
    if body.get("temperature", 1.0) != 1.0:
        report.drop("temperature", "thinking requires the default temperature")
        del body["temperature"]
    if "top_k" in body:
        report.drop("top_k", "thinking does not allow top_k")
        del body["top_k"]
    if "top_p" in body and body["top_p"] < 0.95:
        report.adjust("top_p", "raised to 0.95, the lowest thinking allows")
        body["top_p"] = 0.95
    choice = body.get("tool_choice")
    if choice is not None and choice["type"] in ("any", "tool"):
        report.adjust("tool_choice", "thinking only allows auto or none; auto is used")
        choice["type"] = "auto"
        choice.pop("name", None)


def map_forced_tools(model: ModelInfo, report: CompatReport, body: JsonObject) -> None:
    """Models that refuse forced tool use (Opus 5.5, Fable 5.1 on) get `auto`: lenient reports it,
    strict refuses the request naming `tool_choice`."""
    choice = body.get("tool_choice")
    if traits_of(model).forced_tools or choice is None or choice["type"] not in ("any", "tool"):
        return
    report.adjust("tool_choice", f"{model.id} does not accept forced tool use; auto is used")
    choice["type"] = "auto"
    choice.pop("name", None)


def map_response_format(request: Request, model: ModelInfo, report: CompatReport, mapped: AnthropicRequest) -> None:
    fmt = request.response_format.type if request.HasField("response_format") else 0
    if fmt in (chat_pb2.RESPONSE_FORMAT_TYPE_UNSPECIFIED, chat_pb2.RESPONSE_FORMAT_TYPE_TEXT):
        return
    body = mapped.body
    if fmt == chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
        spec = request.response_format.json_schema
        if not spec.HasField("schema"):
            raise InvalidRequest("`json_schema.schema` is required.", param="response_format.json_schema.schema")
        schema = struct_to_json(spec.schema, "response_format.json_schema.schema")
        if traits_of(model).structured_output:
            body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}
            return
        description = spec.description or f"Reply with JSON matching the `{spec.name or 'response'}` schema."
    else:
        schema = {"type": "object", "additionalProperties": True}
        description = "Reply with a single JSON object."
    if "thinking" in body and body["thinking"]["type"] != "disabled":
        raise InvalidRequest(f"{model.id} cannot combine JSON output with thinking.", param="response_format")
    if not traits_of(model).forced_tools:  # JSON mode here is a forced tool, which the model refuses
        raise InvalidRequest(f"{model.id} has no native JSON output and refuses forced tools.", param="response_format")
    if request.tools:
        report.adjust("tool_choice", "the JSON response tool is forced, so other tools are not called")
    body.setdefault("tools", []).append({"name": JSON_TOOL_NAME, "description": description, "input_schema": schema})
    body["tool_choice"] = {"type": "tool", "name": JSON_TOOL_NAME}
    mapped.json_tool = JSON_TOOL_NAME


# --- caching, service tier, web search ------------------------------------------------


def map_caching(request: Request, report: CompatReport, body: JsonObject) -> None:
    """Breakpoints keep their place; TTLs map to Anthropic's two; at most four breakpoints count,
    the latest ones (as OpenAI keeps them), one of them taken by automatic caching in implicit mode."""
    options = request.prompt_cache_options if request.HasField("prompt_cache_options") else None
    implicit = options is not None and options.mode != chat_pb2.PROMPT_CACHE_MODE_EXPLICIT
    default_ttl = options.ttl if options is not None else chat_pb2.CACHE_TTL_UNSPECIFIED
    controls = list(cache_controls(body))
    if not controls and not implicit:  # most requests: nothing to place
        return
    room = MAX_CACHE_BREAKPOINTS - (1 if implicit else 0)
    for holder in controls[: max(0, len(controls) - room)]:
        control = holder.pop("cache_control")
        report.drop(control[_PARAM], f"Anthropic honours at most {MAX_CACHE_BREAKPOINTS} breakpoints")
    for holder in controls[-room:] if room else ():
        control = holder["cache_control"]
        param = control.pop(_PARAM)
        own = control.pop("ttl", chat_pb2.CACHE_TTL_UNSPECIFIED)
        if own or default_ttl:
            where = f"{param}.ttl" if own else "prompt_cache_options.ttl"
            control["ttl"] = cache_ttl(own or default_ttl, where, report)
    if implicit:
        top: JsonObject = {"type": "ephemeral"}
        if default_ttl:
            top["ttl"] = cache_ttl(default_ttl, "prompt_cache_options.ttl", report)
        body["cache_control"] = top


def cache_ttl(ttl: int, param: str, report: CompatReport) -> str:
    value, change = CACHE_TTLS[ttl]
    if change:
        report.adjust(param, change)
    return value


def cache_controls(body: JsonObject) -> Any:
    """Every block that carries a cache breakpoint, in Anthropic's prefix order: tools, system, messages."""
    for tool in body.get("tools", ()):
        if "cache_control" in tool:
            yield tool
    for block in body.get("system", ()):
        if "cache_control" in block:
            yield block
    for turn in body["messages"]:
        for block in turn["content"]:
            nested = block.get("content") if block.get("type") == "tool_result" else None
            if isinstance(nested, list):
                yield from (b for b in nested if "cache_control" in b)
            if "cache_control" in block:
                yield block


def map_service_tier(request: Request, model: ModelInfo, report: CompatReport, mapped: AnthropicRequest) -> None:
    if not request.HasField("service_tier"):
        return
    tier = request.service_tier
    if tier == "fast":
        if traits_of(model).fast_mode:
            mapped.body["speed"] = "fast"
            mapped.betas.append(FAST_MODE_BETA)
        else:
            report.drop("service_tier", f"{model.id} has no fast mode")
    elif tier in SERVICE_TIERS:
        mapped.body["service_tier"] = SERVICE_TIERS[tier]
        if tier == "priority":
            report.adjust("service_tier", "sent as auto: priority capacity where the organisation has it")
    else:
        report.drop("service_tier", f"Claude has no `{tier}` tier")


def map_web_search(request: Request, report: CompatReport, body: JsonObject) -> None:
    """OpenAI's web search becomes Anthropic's web search server tool."""
    if not request.HasField("web_search_options"):
        return
    options = request.web_search_options
    tool: JsonObject = dict(WEB_SEARCH_TOOL)
    if options.HasField("user_location"):
        where = options.user_location
        location = {
            k: v
            for k, v in (
                ("city", where.city),
                ("region", where.region),
                ("country", where.country),
                ("timezone", where.timezone),
            )
            if v
        }
        if location:
            tool["user_location"] = {"type": "approximate", **location}
    if options.search_context_size:
        report.drop("web_search_options.search_context_size", "Claude decides how much of the results to use")
    body.setdefault("tools", []).append(tool)


# Each unsupported field with how to tell it was sent: presence for the singular ones, length for maps.
_UNSUPPORTED_CHECKS = tuple((name, Request.DESCRIPTOR.fields_by_name[name].has_presence) for name in UNSUPPORTED)


def report_unsupported(request: Request, report: CompatReport) -> None:
    """Asks for each field directly: `ListFields` would build the value of every field set, the
    messages included, which cost more (18k instructions a request) than all fourteen questions."""
    has = request.HasField
    for name, presence in _UNSUPPORTED_CHECKS:
        if has(name) if presence else len(getattr(request, name)):
            report.drop(name, "Claude has no equivalent")
    if request.modalities and any(m != "text" for m in request.modalities[:]):
        report.drop("modalities", "Claude only produces text")

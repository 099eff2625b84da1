"""OpenAI Chat Completions JSON <-> chatgate.v1 messages, field by field.

Protobuf's own JSON mapping is not OpenAI's wire (camelCase names, no
`object`, no `choices` shape), so every field is written out here. JSON ->
message readers name the offending field as OpenAI's `param`; message -> JSON
writers produce exactly what OpenAI's API sends. The HTTP edge uses
``request_from_json`` and the ``*_json`` writers. The other direction (what an
OpenAI-compatible upstream would need) lives beside the tests that use it to
check this one (``tests/codecs/openai_upstream.py``) until such an upstream exists.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.v1 import chat_pb2, chat_service_pb2
from service.core.errors import InvalidRequest

from .fields import (
    Json,
    get_bool,
    get_enum,
    get_int,
    get_list,
    get_number,
    get_object,
    get_str,
    to_struct,
    type_error,
)

Request = chat_service_pb2.ChatCompletionRequest

ROLES = {
    "system": chat_pb2.ROLE_SYSTEM,
    "developer": chat_pb2.ROLE_DEVELOPER,
    "user": chat_pb2.ROLE_USER,
    "assistant": chat_pb2.ROLE_ASSISTANT,
    "tool": chat_pb2.ROLE_TOOL,
}
ROLE_NAMES = {value: name for name, value in ROLES.items()}
TOOL_CHOICE_MODES = {
    "auto": chat_pb2.TOOL_CHOICE_MODE_AUTO,
    "none": chat_pb2.TOOL_CHOICE_MODE_NONE,
    "required": chat_pb2.TOOL_CHOICE_MODE_REQUIRED,
}
RESPONSE_FORMATS = {
    "text": chat_pb2.RESPONSE_FORMAT_TYPE_TEXT,
    "json_object": chat_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT,
    "json_schema": chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
}
EFFORTS = {
    "none": chat_pb2.REASONING_EFFORT_NONE,
    "minimal": chat_pb2.REASONING_EFFORT_MINIMAL,
    "low": chat_pb2.REASONING_EFFORT_LOW,
    "medium": chat_pb2.REASONING_EFFORT_MEDIUM,
    "high": chat_pb2.REASONING_EFFORT_HIGH,
    "xhigh": chat_pb2.REASONING_EFFORT_XHIGH,
    "max": chat_pb2.REASONING_EFFORT_MAX,
}
THINKING_DISPLAYS = {"summarized": chat_pb2.THINKING_DISPLAY_SUMMARIZED, "omitted": chat_pb2.THINKING_DISPLAY_OMITTED}
PROMPT_CACHE_MODES = {"implicit": chat_pb2.PROMPT_CACHE_MODE_IMPLICIT, "explicit": chat_pb2.PROMPT_CACHE_MODE_EXPLICIT}
MODEL_THINKING_NAMES = {
    value.number: value.name.removeprefix("MODEL_THINKING_").lower()
    for value in chat_pb2.ModelThinking.DESCRIPTOR.values
    if value.number
}
THINKING_TYPES = {
    "enabled": chat_pb2.THINKING_TYPE_ENABLED,
    "disabled": chat_pb2.THINKING_TYPE_DISABLED,
    "adaptive": chat_pb2.THINKING_TYPE_ADAPTIVE,
}
COMPATIBILITY = {"lenient": chat_pb2.COMPATIBILITY_LENIENT, "strict": chat_pb2.COMPATIBILITY_STRICT}
IMAGE_DETAILS = {
    "auto": chat_pb2.IMAGE_DETAIL_AUTO,
    "low": chat_pb2.IMAGE_DETAIL_LOW,
    "high": chat_pb2.IMAGE_DETAIL_HIGH,
}
CACHE_TYPES = {"ephemeral": chat_pb2.CACHE_CONTROL_TYPE_EPHEMERAL}
CACHE_TTLS = {
    "5m": chat_pb2.CACHE_TTL_FIVE_MINUTES,
    "1h": chat_pb2.CACHE_TTL_ONE_HOUR,
    "30m": chat_pb2.CACHE_TTL_THIRTY_MINUTES,
    "12h": chat_pb2.CACHE_TTL_TWELVE_HOURS,
}
TOOL_TYPES = {"function": chat_pb2.TOOL_TYPE_FUNCTION}
THINKING_BLOCK_TYPES = {
    "thinking": chat_pb2.THINKING_BLOCK_TYPE_THINKING,
    "redacted_thinking": chat_pb2.THINKING_BLOCK_TYPE_REDACTED,
}
FINISH_REASON_VALUES = {
    "stop": chat_pb2.FINISH_REASON_STOP,
    "length": chat_pb2.FINISH_REASON_LENGTH,
    "tool_calls": chat_pb2.FINISH_REASON_TOOL_CALLS,
    "content_filter": chat_pb2.FINISH_REASON_CONTENT_FILTER,
}
FINISH_REASONS: dict[int, str | None] = {
    chat_pb2.FINISH_REASON_UNSPECIFIED: None,
    chat_pb2.FINISH_REASON_STOP: "stop",
    chat_pb2.FINISH_REASON_LENGTH: "length",
    chat_pb2.FINISH_REASON_TOOL_CALLS: "tool_calls",
    chat_pb2.FINISH_REASON_CONTENT_FILTER: "content_filter",
}

# Fields read below; anything else is reported as ignored.
KNOWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_completion_tokens",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "n",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "thinking",
        "user",
        "compatibility",
        "seed",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "presence_penalty",
        "frequency_penalty",
        "store",
        "metadata",
        "service_tier",
        "modalities",
        "audio",
        "prediction",
        "moderation",
        "verbosity",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "web_search_options",
        "functions",
        "function_call",
    }
)


# --- request ------------------------------------------------------------------


def request_from_json(body: Any) -> tuple[chat_service_pb2.ChatCompletionRequest, bool, list[str]]:
    """Returns the request, whether it asked to stream, and the ignored field names."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", param=None, code="invalid_json")
    request = chat_service_pb2.ChatCompletionRequest()
    model = get_str(body, "model", "model")
    if not model:
        raise InvalidRequest("You must provide a model parameter.", param="model", code="missing_required_parameter")
    request.model = model
    messages = get_list(body, "messages", "messages")
    if not messages:
        raise InvalidRequest(
            "`messages` must contain at least one message.", param="messages", code="missing_required_parameter"
        )
    add = request.messages.add  # filled in place: an appended message would be copied whole
    for i, message in enumerate(messages):
        read_message(message, i, add())
    _read_scalars(body, request)
    if not OPTION_FIELDS.isdisjoint(body):  # most requests carry none: a dozen lookups saved
        _read_options(body, request)
    stream = bool(get_bool(body, "stream", "stream"))
    return request, stream, sorted(set(body) - KNOWN_FIELDS)


# Scalar request fields by JSON type, read with the checked getter for that type.
SCALARS: dict[str, Any] = {
    **dict.fromkeys(("max_completion_tokens", "max_tokens", "top_k", "n", "top_logprobs", "seed"), get_int),
    **dict.fromkeys(("temperature", "top_p", "presence_penalty", "frequency_penalty"), get_number),
    **dict.fromkeys(("parallel_tool_calls", "logprobs", "store"), get_bool),
    **dict.fromkeys(
        ("user", "service_tier", "safety_identifier", "verbosity", "prompt_cache_key", "prompt_cache_retention"),
        get_str,
    ),
}


# What `_read_options` reads: every known field but the scalars and the three read first.
OPTION_FIELDS = KNOWN_FIELDS - SCALARS.keys() - {"model", "messages", "stream"}


def _read_scalars(body: Json, request: chat_service_pb2.ChatCompletionRequest) -> None:
    for key in [k for k in body if k in SCALARS]:  # only what the client sent, in its order
        value = SCALARS[key](body, key, key)
        if value is not None:
            setattr(request, key, value)


def _read_options(body: Json, request: chat_service_pb2.ChatCompletionRequest) -> None:
    stop = body.get("stop")
    if isinstance(stop, str):
        request.stop.append(stop)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        request.stop.extend(stop)
    elif stop is not None:
        raise type_error("stop", "a string or an array of strings")
    if (options := get_object(body, "stream_options", "stream_options")) is not None:
        request.stream_options.include_usage = bool(get_bool(options, "include_usage", "stream_options.include_usage"))
    for k, tool in enumerate(get_list(body, "tools", "tools") or ()):
        request.tools.append(tool_from_json(tool, f"tools[{k}]"))
    if "tool_choice" in body and body["tool_choice"] is not None:
        request.tool_choice.CopyFrom(tool_choice_from_json(body["tool_choice"]))
    _read_legacy_functions(body, request)
    if (fmt := get_object(body, "response_format", "response_format")) is not None:
        request.response_format.CopyFrom(response_format_from_json(fmt))
    if (effort := get_enum(body, "reasoning_effort", "reasoning_effort", EFFORTS)) is not None:
        request.reasoning_effort = effort
    if (thinking := get_object(body, "thinking", "thinking")) is not None:
        target = request.anthropic.thinking
        target.type = get_enum(thinking, "type", "thinking.type", THINKING_TYPES) or chat_pb2.THINKING_TYPE_UNSPECIFIED
        target.budget_tokens = get_int(thinking, "budget_tokens", "thinking.budget_tokens") or 0
        display = get_enum(thinking, "display", "thinking.display", THINKING_DISPLAYS)
        target.display = display or chat_pb2.THINKING_DISPLAY_UNSPECIFIED
    if (mode := get_enum(body, "compatibility", "compatibility", COMPATIBILITY)) is not None:
        request.compatibility = mode
    if (options := get_object(body, "prompt_cache_options", "prompt_cache_options")) is not None:
        param = "prompt_cache_options"
        target_options = request.prompt_cache_options
        cache_mode = get_enum(options, "mode", f"{param}.mode", PROMPT_CACHE_MODES)
        target_options.mode = cache_mode or chat_pb2.PROMPT_CACHE_MODE_IMPLICIT
        target_options.ttl = get_enum(options, "ttl", f"{param}.ttl", CACHE_TTLS) or chat_pb2.CACHE_TTL_UNSPECIFIED
    if (search := get_object(body, "web_search_options", "web_search_options")) is not None:
        request.web_search_options.CopyFrom(web_search_from_json(search))
    _read_unsupported(body, request)


def _read_legacy_functions(body: Json, request: chat_service_pb2.ChatCompletionRequest) -> None:
    """OpenAI's deprecated `functions` / `function_call` are the same request as `tools` / `tool_choice`."""
    functions = get_list(body, "functions", "functions")
    if functions:
        if request.tools:
            raise InvalidRequest("Send `tools` or the older `functions`, not both.", param="functions")
        for k, function in enumerate(functions):
            request.tools.append(tool_from_json({"type": "function", "function": function}, f"functions[{k}]"))
    call = body.get("function_call")
    if call is None:
        return
    if request.HasField("tool_choice"):
        raise InvalidRequest("Send `tool_choice` or the older `function_call`, not both.", param="function_call")
    if isinstance(call, dict):
        name = get_str(call, "name", "function_call.name")
        if not name:
            raise InvalidRequest("`function_call.name` is required.", param="function_call.name")
        request.tool_choice.function_name = name
    elif call in ("auto", "none"):
        request.tool_choice.mode = TOOL_CHOICE_MODES[call]
    else:
        raise InvalidRequest(
            '`function_call` must be `auto`, `none` or {"name": ...}.', param="function_call", code="invalid_value"
        )


def web_search_from_json(search: Json) -> chat_pb2.WebSearchOptions:
    param = "web_search_options"
    out = chat_pb2.WebSearchOptions(
        search_context_size=get_str(search, "search_context_size", f"{param}.search_context_size") or ""
    )
    location = get_object(search, "user_location", f"{param}.user_location")
    if location is not None:
        where = get_object(location, "approximate", f"{param}.user_location.approximate") or {}
        target = out.user_location
        for key in ("city", "country", "region", "timezone"):
            setattr(target, key, get_str(where, key, f"{param}.user_location.approximate.{key}") or "")
    return out


def _read_unsupported(body: Json, request: chat_service_pb2.ChatCompletionRequest) -> None:
    """Fields with no Claude equivalent are still carried, so the policy can report or reject them."""
    for token, bias in (get_object(body, "logit_bias", "logit_bias") or {}).items():
        if isinstance(bias, bool) or not isinstance(bias, int | float):
            raise type_error(f"logit_bias.{token}", "a number")
        request.logit_bias[str(token)] = float(bias)
    for key, value in (get_object(body, "metadata", "metadata") or {}).items():
        if not isinstance(value, str):
            raise type_error(f"metadata.{key}", "a string")
        request.metadata[str(key)] = value
    modalities = get_list(body, "modalities", "modalities") or []
    if not all(isinstance(m, str) for m in modalities):
        raise type_error("modalities", "an array of strings")
    request.modalities.extend(modalities)
    for key in ("audio", "prediction", "moderation"):
        if (value := get_object(body, key, key)) is not None:
            getattr(request, key).CopyFrom(to_struct(value, key))


def message_from_json(message: Any, param: str) -> chat_pb2.ChatMessage:
    out = chat_pb2.ChatMessage()
    read_message(message, param, out)
    return out


def read_message(message: Any, where: str | int, out: chat_pb2.ChatMessage) -> None:
    """Reads one chat message into ``out``. ``where`` is its param name, or its index in
    `messages`: the name is only spelled out when something needs it (a long conversation
    would otherwise format several names per message for nothing)."""
    role_name = message.get("role") if isinstance(message, dict) else None
    role = ROLES.get(role_name) if isinstance(role_name, str) else None
    out.role = role if role is not None else checked_role(message, spelled(where))
    content = message.get("content")
    if isinstance(content, str):
        out.content.add(text=content)
    elif content is not None:
        param = spelled(where)
        if not isinstance(content, list):
            raise type_error(f"{param}.content", "a string or an array of content parts")
        add = out.content.add
        for j, part in enumerate(content):
            read_part(part, f"{param}.content[{j}]", add())
    if len(message) > 1 + ("content" in message):  # more than role and content
        _read_message_extras(message, spelled(where), out)


def spelled(where: str | int) -> str:
    return where if isinstance(where, str) else f"messages[{where}]"


def checked_role(message: Any, param: str) -> chat_pb2.Role:
    """The role read by the checked readers, which raise naming what is wrong."""
    if not isinstance(message, dict):
        raise type_error(param, "an object")
    if message.get("role") is None:
        raise InvalidRequest(f"`{param}.role` is required.", param=f"{param}.role", code="missing_required_parameter")
    role = get_enum(message, "role", f"{param}.role", ROLES)
    assert role is not None  # get_enum raises for every name ROLES lacks
    return role


def _read_message_extras(message: Json, param: str, out: chat_pb2.ChatMessage) -> None:
    out.name = get_str(message, "name", f"{param}.name") or ""
    out.tool_call_id = get_str(message, "tool_call_id", f"{param}.tool_call_id") or ""
    for k, call in enumerate(get_list(message, "tool_calls", f"{param}.tool_calls") or ()):
        out.tool_calls.append(tool_call_from_json(call, f"{param}.tool_calls[{k}]"))
    for k, block in enumerate(get_list(message, "thinking_blocks", f"{param}.thinking_blocks") or ()):
        out.thinking_blocks.append(thinking_block_from_json(block, f"{param}.thinking_blocks[{k}]"))


def read_part(part: Any, param: str, out: chat_pb2.ContentPart) -> None:
    """Reads one content part into ``out``."""
    if not isinstance(part, dict):
        raise type_error(param, "an object")
    kind = part.get("type")
    if kind is not None and not isinstance(kind, str):
        raise type_error(f"{param}.type", "a string")
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if isinstance(text, str):  # the common case, read without formatting an error name
            out.text = text
        else:
            out.text = get_str(part, kind, f"{param}.{kind}") or ""
    elif kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):  # some clients send the URL directly
            image = {"url": image}
        if not isinstance(image, dict) or not isinstance(image.get("url"), str):
            raise type_error(f"{param}.image_url.url", "a string")
        out.image_url.url = image["url"]
        detail = get_enum(image, "detail", f"{param}.image_url.detail", IMAGE_DETAILS)
        out.image_url.detail = detail or chat_pb2.IMAGE_DETAIL_UNSPECIFIED
    elif kind == "file":
        file = get_object(part, "file", f"{param}.file") or {}
        out.file.file_data = get_str(file, "file_data", f"{param}.file.file_data") or ""
        out.file.file_id = get_str(file, "file_id", f"{param}.file.file_id") or ""
        out.file.filename = get_str(file, "filename", f"{param}.file.filename") or ""
    elif kind == "input_audio":
        audio = get_object(part, "input_audio", f"{param}.input_audio") or {}
        out.input_audio.data = get_str(audio, "data", f"{param}.input_audio.data") or ""
        out.input_audio.format = get_str(audio, "format", f"{param}.input_audio.format") or ""
    else:
        raise InvalidRequest(f"Unknown content part type `{kind}`.", param=f"{param}.type", code="invalid_value")
    if "cache_control" in part or "prompt_cache_breakpoint" in part:
        _read_cache_marker(part, param, out)


def _read_cache_marker(part: Json, param: str, out: chat_pb2.ContentPart) -> None:
    if (control := get_object(part, "cache_control", f"{param}.cache_control")) is not None:
        out.cache_control.CopyFrom(cache_control_from_json(control, f"{param}.cache_control"))
    elif (breakpoint := get_object(part, "prompt_cache_breakpoint", f"{param}.prompt_cache_breakpoint")) is not None:
        # OpenAI's breakpoint is the same marker as Anthropic's cache_control (which wins when both are set).
        ttl = get_enum(breakpoint, "ttl", f"{param}.prompt_cache_breakpoint.ttl", CACHE_TTLS)
        out.cache_control.CopyFrom(
            chat_pb2.CacheControl(type=chat_pb2.CACHE_CONTROL_TYPE_EPHEMERAL, ttl=ttl or chat_pb2.CACHE_TTL_UNSPECIFIED)
        )


def cache_control_from_json(control: Json, param: str) -> chat_pb2.CacheControl:
    return chat_pb2.CacheControl(
        type=get_enum(control, "type", f"{param}.type", CACHE_TYPES) or chat_pb2.CACHE_CONTROL_TYPE_EPHEMERAL,
        ttl=get_enum(control, "ttl", f"{param}.ttl", CACHE_TTLS) or chat_pb2.CACHE_TTL_UNSPECIFIED,
    )


def tool_call_from_json(call: Any, param: str) -> chat_pb2.ToolCall:
    if not isinstance(call, dict):
        raise type_error(param, "an object")
    function = get_object(call, "function", f"{param}.function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, dict):  # lenient: an object where JSON text belongs
        arguments = orjson.dumps(arguments).decode()
    elif arguments is not None and not isinstance(arguments, str):
        raise type_error(f"{param}.function.arguments", "a JSON string")
    return chat_pb2.ToolCall(
        id=get_str(call, "id", f"{param}.id") or "",
        type=get_enum(call, "type", f"{param}.type", TOOL_TYPES) or chat_pb2.TOOL_TYPE_FUNCTION,
        function=chat_pb2.FunctionCall(
            name=get_str(function, "name", f"{param}.function.name") or "", arguments=arguments or ""
        ),
    )


def thinking_block_from_json(block: Any, param: str) -> chat_pb2.ThinkingBlock:
    if not isinstance(block, dict):
        raise type_error(param, "an object")
    return chat_pb2.ThinkingBlock(
        type=get_enum(block, "type", f"{param}.type", THINKING_BLOCK_TYPES) or chat_pb2.THINKING_BLOCK_TYPE_THINKING,
        thinking=get_str(block, "thinking", f"{param}.thinking") or "",
        signature=get_str(block, "signature", f"{param}.signature") or "",
        data=get_str(block, "data", f"{param}.data") or "",
    )


def tool_from_json(tool: Any, param: str) -> chat_pb2.Tool:
    if not isinstance(tool, dict):
        raise type_error(param, "an object")
    function = get_object(tool, "function", f"{param}.function")
    if function is None:
        raise InvalidRequest(
            f"`{param}.function` is required.", param=f"{param}.function", code="missing_required_parameter"
        )
    out = chat_pb2.Tool(type=get_enum(tool, "type", f"{param}.type", TOOL_TYPES) or chat_pb2.TOOL_TYPE_FUNCTION)
    out.function.name = get_str(function, "name", f"{param}.function.name") or ""
    out.function.description = get_str(function, "description", f"{param}.function.description") or ""
    if (schema := get_object(function, "parameters", f"{param}.function.parameters")) is not None:
        out.function.parameters.CopyFrom(to_struct(schema, f"{param}.function.parameters"))
    if (strict := get_bool(function, "strict", f"{param}.function.strict")) is not None:
        out.function.strict = strict
    if (control := get_object(tool, "cache_control", f"{param}.cache_control")) is not None:
        out.cache_control.CopyFrom(cache_control_from_json(control, f"{param}.cache_control"))
    return out


def tool_choice_from_json(choice: Any) -> chat_pb2.ToolChoice:
    if isinstance(choice, str):
        mode = get_enum({"tool_choice": choice}, "tool_choice", "tool_choice", TOOL_CHOICE_MODES)
        return chat_pb2.ToolChoice(mode=mode)
    if isinstance(choice, dict):
        function = get_object(choice, "function", "tool_choice.function") or {}
        name = get_str(function, "name", "tool_choice.function.name")
        if name:
            return chat_pb2.ToolChoice(function_name=name)
    raise InvalidRequest(
        '`tool_choice` must be `auto`, `none`, `required` or {"type": "function", "function": {"name": ...}}.',
        param="tool_choice",
        code="invalid_value",
    )


def response_format_from_json(fmt: Json) -> chat_pb2.ResponseFormat:
    kind = get_enum(fmt, "type", "response_format.type", RESPONSE_FORMATS)
    out = chat_pb2.ResponseFormat(type=kind or chat_pb2.RESPONSE_FORMAT_TYPE_TEXT)
    if (spec := get_object(fmt, "json_schema", "response_format.json_schema")) is not None:
        param = "response_format.json_schema"
        out.json_schema.name = get_str(spec, "name", f"{param}.name") or ""
        out.json_schema.description = get_str(spec, "description", f"{param}.description") or ""
        if (schema := get_object(spec, "schema", f"{param}.schema")) is not None:
            out.json_schema.schema.CopyFrom(to_struct(schema, f"{param}.schema"))
        if (strict := get_bool(spec, "strict", f"{param}.strict")) is not None:
            out.json_schema.strict = strict
    return out


# --- response -----------------------------------------------------------------


def usage_json(usage: chat_pb2.Usage) -> Json:
    details = usage.prompt_tokens_details  # read once: each read of a protobuf field is a lookup by name
    written = details.cache_creation_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": details.cached_tokens,
            "cache_write_tokens": written,
            "cache_write_5m_tokens": details.cache_write_5m_tokens,
            "cache_write_1h_tokens": details.cache_write_1h_tokens,
            # The name chatgate used before OpenAI named the field; kept for existing clients.
            "cache_creation_tokens": written,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.completion_tokens_details.reasoning_tokens},
    }


def thinking_blocks_json(blocks: Any, *, indexed: bool = False) -> list[Json]:
    """Thinking blocks as JSON; stream deltas carry ``index`` so that list-merging
    clients (the OpenAI SDK's accumulator among them) can place each block."""
    out: list[Json] = []
    for block in blocks:
        entry: Json = {"index": block.index} if indexed else {}
        redacted = block.type == chat_pb2.THINKING_BLOCK_TYPE_REDACTED
        entry["type"] = "redacted_thinking" if redacted else "thinking"
        if redacted:
            entry["data"] = block.data
        else:
            entry["thinking"], entry["signature"] = block.thinking, block.signature
        out.append(entry)
    return out


def message_json(message: chat_pb2.ChatMessage) -> Json:
    parts = message.content[:]
    out: Json = {
        "role": ROLE_NAMES.get(message.role, "assistant"),
        "content": "".join([p.text for p in parts]) if parts else None,
        "refusal": message.refusal or None,
    }
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls[:]
        ]
    if message.annotations:
        out["annotations"] = annotations_json(message.annotations)
    if message.reasoning_content:
        out["reasoning_content"] = message.reasoning_content
    if message.thinking_blocks:
        out["thinking_blocks"] = thinking_blocks_json(message.thinking_blocks)
    return out


def annotations_json(annotations: Any, *, indexed: bool = False) -> list[Json]:
    """OpenAI's `url_citation` annotations; stream deltas carry ``index`` for list-merging clients."""
    out: list[Json] = []
    for annotation in annotations:
        cited = annotation.url_citation
        entry: Json = {"index": annotation.index} if indexed else {}
        entry["type"] = "url_citation"
        entry["url_citation"] = {
            "start_index": cited.start_index,
            "end_index": cited.end_index,
            "url": cited.url,
            "title": cited.title,
        }
        out.append(entry)
    return out


def completion_json(completion: chat_pb2.ChatCompletion) -> Json:
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [
            {
                "index": c.index,
                "message": message_json(c.message),
                "finish_reason": FINISH_REASONS[c.finish_reason],
                "logprobs": None,
            }
            # slices: a loop over a protobuf repeated field costs an IndexError (docs/performance.md)
            for c in completion.choices[:]
        ],
        "usage": usage_json(completion.usage),
    }


def _tool_call_delta_json(call: chat_pb2.ToolCall) -> Json:
    function: Json = {"arguments": call.function.arguments}
    out: Json = {"index": call.index, "function": function}
    if call.id:  # the first fragment of a call names it
        out["id"] = call.id
        out["type"] = "function"
        function["name"] = call.function.name
    return out


def delta_json(delta: chat_pb2.Delta) -> Json:
    """Only the fields the delta sets, in field order: one ``ListFields`` call instead of a
    presence check per field (this runs once per streamed chunk)."""
    out: Json = {}
    for field, value in delta.ListFields():
        name = field.name
        if name in ("content", "reasoning_content", "refusal"):
            out[name] = value
        elif name == "role":
            out["role"] = ROLE_NAMES[value]
        elif name == "tool_calls":
            out["tool_calls"] = [_tool_call_delta_json(c) for c in value]
        elif name == "thinking_blocks":
            out["thinking_blocks"] = thinking_blocks_json(value, indexed=True)
        elif name == "annotations":
            out["annotations"] = annotations_json(value, indexed=True)
    return out


def chunk_json(chunk: chat_pb2.ChatCompletionChunk) -> Json:
    out: Json = {
        "id": chunk.id,
        "object": "chat.completion.chunk",
        "created": chunk.created,
        "model": chunk.model,
        "choices": [
            {
                "index": c.index,
                "delta": delta_json(c.delta),
                "finish_reason": FINISH_REASONS[c.finish_reason],
                "logprobs": None,
            }
            for c in chunk.choices
        ],
    }
    if chunk.HasField("usage"):
        out["usage"] = usage_json(chunk.usage)
    return out


def model_json(model: chat_pb2.Model) -> Json:
    return {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "display_name": model.display_name,
        "aliases": list(model.aliases),
        "max_output_tokens": model.max_output_tokens,
        "context_window": model.context_window,
        "thinking": MODEL_THINKING_NAMES.get(model.thinking),
        "efforts": list(model.efforts),
        "sampling": model.sampling,
        "structured_output": model.structured_output,
        "fast_mode": model.fast_mode,
        "retired": model.retired or None,
        "successor": model.successor or None,
        "source": model.source,
    }

"""OpenAI Chat Completions JSON <-> chatgate.v1 messages, field by field.

Protobuf's own JSON mapping is not OpenAI's wire (camelCase names, no
`object`, no `choices` shape), so both directions are written out here. Every
type error names the offending field as OpenAI's `param`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from google.protobuf import struct_pb2

from chatgate.v1 import chat_pb2, chat_service_pb2
from service.core.errors import InvalidRequest

Json = dict[str, Any]
T = TypeVar("T")

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
}
THINKING_TYPES = {
    "enabled": chat_pb2.THINKING_TYPE_ENABLED,
    "disabled": chat_pb2.THINKING_TYPE_DISABLED,
    "adaptive": chat_pb2.THINKING_TYPE_ADAPTIVE,
}
COMPATIBILITY = {"lenient": chat_pb2.COMPATIBILITY_LENIENT, "strict": chat_pb2.COMPATIBILITY_STRICT}
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
    }
)


# --- typed field readers ------------------------------------------------------


def _type_error(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"`{param}` must be {expected}.", param=param, code="invalid_type")


def get_str(obj: Mapping[str, Any], key: str, param: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _type_error(param, "a string")


def get_int(obj: Mapping[str, Any], key: str, param: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _type_error(param, "an integer")
    return value


def get_number(obj: Mapping[str, Any], key: str, param: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(param, "a number")
    return float(value)


def get_bool(obj: Mapping[str, Any], key: str, param: str) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _type_error(param, "a boolean")


def get_object(obj: Mapping[str, Any], key: str, param: str) -> Json | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise _type_error(param, "an object")


def get_list(obj: Mapping[str, Any], key: str, param: str) -> list[Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, list):
        return value
    raise _type_error(param, "an array")


def get_enum(obj: Mapping[str, Any], key: str, param: str, values: Mapping[str, T]) -> T | None:
    name = get_str(obj, key, param)
    if name is None:
        return None
    if name not in values:
        allowed = ", ".join(f"`{v}`" for v in values)
        raise InvalidRequest(f"`{param}` must be one of {allowed}; got `{name}`.", param=param, code="invalid_value")
    return values[name]


def to_struct(value: Json, param: str) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    try:
        struct.update(value)
    except (ValueError, TypeError):
        raise _type_error(param, "a JSON object") from None
    return struct


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
    for i, message in enumerate(messages):
        request.messages.append(message_from_json(message, f"messages[{i}]"))
    _read_scalars(body, request)
    _read_options(body, request)
    stream = bool(get_bool(body, "stream", "stream"))
    return request, stream, sorted(set(body) - KNOWN_FIELDS)


def _read_scalars(body: Json, request: chat_service_pb2.ChatCompletionRequest) -> None:
    for key in ("max_completion_tokens", "max_tokens", "top_k", "n", "top_logprobs", "seed"):
        value = get_int(body, key, key)
        if value is not None:
            setattr(request, key, value)
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        number = get_number(body, key, key)
        if number is not None:
            setattr(request, key, number)
    for key in ("parallel_tool_calls", "logprobs", "store"):
        flag = get_bool(body, key, key)
        if flag is not None:
            setattr(request, key, flag)
    for key in ("user", "service_tier"):
        text = get_str(body, key, key)
        if text is not None:
            setattr(request, key, text)


def _read_options(body: Json, request: chat_service_pb2.ChatCompletionRequest) -> None:
    stop = body.get("stop")
    if isinstance(stop, str):
        request.stop.append(stop)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        request.stop.extend(stop)
    elif stop is not None:
        raise _type_error("stop", "a string or an array of strings")
    if (options := get_object(body, "stream_options", "stream_options")) is not None:
        request.stream_options.include_usage = bool(get_bool(options, "include_usage", "stream_options.include_usage"))
    for k, tool in enumerate(get_list(body, "tools", "tools") or ()):
        request.tools.append(tool_from_json(tool, f"tools[{k}]"))
    if "tool_choice" in body and body["tool_choice"] is not None:
        request.tool_choice.CopyFrom(tool_choice_from_json(body["tool_choice"]))
    if (fmt := get_object(body, "response_format", "response_format")) is not None:
        request.response_format.CopyFrom(response_format_from_json(fmt))
    if (effort := get_enum(body, "reasoning_effort", "reasoning_effort", EFFORTS)) is not None:
        request.reasoning_effort = effort
    if (thinking := get_object(body, "thinking", "thinking")) is not None:
        request.thinking.type = (
            get_enum(thinking, "type", "thinking.type", THINKING_TYPES) or chat_pb2.THINKING_TYPE_UNSPECIFIED
        )
        request.thinking.budget_tokens = get_int(thinking, "budget_tokens", "thinking.budget_tokens") or 0
    if (mode := get_enum(body, "compatibility", "compatibility", COMPATIBILITY)) is not None:
        request.compatibility = mode
    _read_unsupported(body, request)


def _read_unsupported(body: Json, request: chat_service_pb2.ChatCompletionRequest) -> None:
    """Fields with no Claude equivalent are still carried, so the policy can report or reject them."""
    for token, bias in (get_object(body, "logit_bias", "logit_bias") or {}).items():
        if isinstance(bias, bool) or not isinstance(bias, int | float):
            raise _type_error(f"logit_bias.{token}", "a number")
        request.logit_bias[str(token)] = float(bias)
    for key, value in (get_object(body, "metadata", "metadata") or {}).items():
        if not isinstance(value, str):
            raise _type_error(f"metadata.{key}", "a string")
        request.metadata[str(key)] = value
    modalities = get_list(body, "modalities", "modalities") or []
    if not all(isinstance(m, str) for m in modalities):
        raise _type_error("modalities", "an array of strings")
    request.modalities.extend(modalities)
    for key in ("audio", "prediction"):
        if (value := get_object(body, key, key)) is not None:
            getattr(request, key).CopyFrom(to_struct(value, key))


def message_from_json(message: Any, param: str) -> chat_pb2.ChatMessage:
    if not isinstance(message, dict):
        raise _type_error(param, "an object")
    role_name = message.get("role")
    if role_name is None:
        raise InvalidRequest(f"`{param}.role` is required.", param=f"{param}.role", code="missing_required_parameter")
    role = get_enum(message, "role", f"{param}.role", ROLES)
    out = chat_pb2.ChatMessage(role=role)
    content = message.get("content")
    if isinstance(content, str):
        out.content.add(text=content)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            out.content.append(part_from_json(part, f"{param}.content[{j}]"))
    elif content is not None:
        raise _type_error(f"{param}.content", "a string or an array of content parts")
    out.name = get_str(message, "name", f"{param}.name") or ""
    out.tool_call_id = get_str(message, "tool_call_id", f"{param}.tool_call_id") or ""
    for k, call in enumerate(get_list(message, "tool_calls", f"{param}.tool_calls") or ()):
        out.tool_calls.append(tool_call_from_json(call, f"{param}.tool_calls[{k}]"))
    for k, block in enumerate(get_list(message, "thinking_blocks", f"{param}.thinking_blocks") or ()):
        out.thinking_blocks.append(thinking_block_from_json(block, f"{param}.thinking_blocks[{k}]"))
    return out


def part_from_json(part: Any, param: str) -> chat_pb2.ContentPart:
    if not isinstance(part, dict):
        raise _type_error(param, "an object")
    kind = get_str(part, "type", f"{param}.type")
    out = chat_pb2.ContentPart()
    if kind in ("text", "refusal"):
        out.text = get_str(part, kind, f"{param}.{kind}") or ""
    elif kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):  # some clients send the URL directly
            image = {"url": image}
        if not isinstance(image, dict) or not isinstance(image.get("url"), str):
            raise _type_error(f"{param}.image_url.url", "a string")
        out.image_url.url = image["url"]
        out.image_url.detail = get_str(image, "detail", f"{param}.image_url.detail") or ""
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
    if (control := get_object(part, "cache_control", f"{param}.cache_control")) is not None:
        out.cache_control.CopyFrom(cache_control_from_json(control, f"{param}.cache_control"))
    return out


def cache_control_from_json(control: Json, param: str) -> chat_pb2.CacheControl:
    return chat_pb2.CacheControl(
        type=get_str(control, "type", f"{param}.type") or "ephemeral", ttl=get_str(control, "ttl", f"{param}.ttl") or ""
    )


def tool_call_from_json(call: Any, param: str) -> chat_pb2.ToolCall:
    if not isinstance(call, dict):
        raise _type_error(param, "an object")
    function = get_object(call, "function", f"{param}.function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, dict):  # lenient: an object where JSON text belongs
        arguments = orjson.dumps(arguments).decode()
    elif arguments is not None and not isinstance(arguments, str):
        raise _type_error(f"{param}.function.arguments", "a JSON string")
    return chat_pb2.ToolCall(
        id=get_str(call, "id", f"{param}.id") or "",
        type=get_str(call, "type", f"{param}.type") or "function",
        function=chat_pb2.FunctionCall(
            name=get_str(function, "name", f"{param}.function.name") or "", arguments=arguments or ""
        ),
    )


def thinking_block_from_json(block: Any, param: str) -> chat_pb2.ThinkingBlock:
    if not isinstance(block, dict):
        raise _type_error(param, "an object")
    return chat_pb2.ThinkingBlock(
        type=get_str(block, "type", f"{param}.type") or "thinking",
        thinking=get_str(block, "thinking", f"{param}.thinking") or "",
        signature=get_str(block, "signature", f"{param}.signature") or "",
        data=get_str(block, "data", f"{param}.data") or "",
    )


def tool_from_json(tool: Any, param: str) -> chat_pb2.Tool:
    if not isinstance(tool, dict):
        raise _type_error(param, "an object")
    function = get_object(tool, "function", f"{param}.function")
    if function is None:
        raise InvalidRequest(
            f"`{param}.function` is required.", param=f"{param}.function", code="missing_required_parameter"
        )
    out = chat_pb2.Tool(type=get_str(tool, "type", f"{param}.type") or "function")
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
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.prompt_tokens_details.cached_tokens,
            "cache_creation_tokens": usage.prompt_tokens_details.cache_creation_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.completion_tokens_details.reasoning_tokens},
    }


def thinking_blocks_json(blocks: Any, *, indexed: bool = False) -> list[Json]:
    """Thinking blocks as JSON; stream deltas carry ``index`` so that list-merging
    clients (the OpenAI SDK's accumulator among them) can place each block."""
    out: list[Json] = []
    for block in blocks:
        entry: Json = {"index": block.index} if indexed else {}
        entry["type"] = block.type
        if block.type == "redacted_thinking":
            entry["data"] = block.data
        else:
            entry["thinking"], entry["signature"] = block.thinking, block.signature
        out.append(entry)
    return out


def message_json(message: chat_pb2.ChatMessage) -> Json:
    out: Json = {
        "role": ROLE_NAMES.get(message.role, "assistant"),
        "content": "".join(p.text for p in message.content) if message.content else None,
        "refusal": message.refusal or None,
    }
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls
        ]
    if message.reasoning_content:
        out["reasoning_content"] = message.reasoning_content
    if message.thinking_blocks:
        out["thinking_blocks"] = thinking_blocks_json(message.thinking_blocks)
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
            for c in completion.choices
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
    out: Json = {}
    if delta.role:
        out["role"] = ROLE_NAMES[delta.role]
    if delta.HasField("content"):
        out["content"] = delta.content
    if delta.HasField("reasoning_content"):
        out["reasoning_content"] = delta.reasoning_content
    if delta.tool_calls:
        out["tool_calls"] = [_tool_call_delta_json(c) for c in delta.tool_calls]
    if delta.thinking_blocks:
        out["thinking_blocks"] = thinking_blocks_json(delta.thinking_blocks, indexed=True)
    if delta.HasField("refusal"):
        out["refusal"] = delta.refusal
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
    }

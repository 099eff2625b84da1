"""chatgate.v1 -> OpenAI request JSON, and OpenAI response JSON -> chatgate.v1: the direction an
OpenAI-compatible upstream would need. No upstream of that kind exists yet, so it lives beside the
tests that use it: ``request_from_json(request_to_json(r)) == r`` and the reply round trips check
the gateway's own codec (``service/codecs/openai_chat.py``) field by field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chatgate.v1 import chat_pb2, chat_service_pb2
from service.codecs.fields import Json, get_enum, get_int, get_list, get_object, get_str, struct_to_json, type_error
from service.codecs.openai_chat import (
    CACHE_TTLS,
    COMPATIBILITY,
    EFFORTS,
    FINISH_REASON_VALUES,
    IMAGE_DETAILS,
    PROMPT_CACHE_MODES,
    RESPONSE_FORMATS,
    ROLE_NAMES,
    ROLES,
    THINKING_DISPLAYS,
    THINKING_TYPES,
    TOOL_CHOICE_MODES,
    message_from_json,
    thinking_block_from_json,
    thinking_blocks_json,
    tool_call_from_json,
)

Request = chat_service_pb2.ChatCompletionRequest


def request_to_json(request: Request, *, stream: bool = False) -> Json:
    body: Json = {"model": request.model, "messages": [message_to_json(m) for m in request.messages]}
    for name in (
        "max_completion_tokens",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "n",
        "parallel_tool_calls",
        "seed",
        "logprobs",
        "top_logprobs",
        "presence_penalty",
        "frequency_penalty",
        "store",
        "service_tier",
        "verbosity",
        "prompt_cache_key",
        "prompt_cache_retention",
    ):
        if request.HasField(name):
            body[name] = getattr(request, name)
    if request.stop:
        body["stop"] = list(request.stop)
    if stream:
        body["stream"] = True
    if request.HasField("stream_options"):
        body["stream_options"] = {"include_usage": request.stream_options.include_usage}
    if request.tools:
        body["tools"] = [tool_to_json(t) for t in request.tools]
    if request.HasField("tool_choice"):
        body["tool_choice"] = tool_choice_to_json(request.tool_choice)
    if request.HasField("response_format"):
        body["response_format"] = response_format_to_json(request.response_format)
    if request.reasoning_effort:
        body["reasoning_effort"] = _name_of(EFFORTS, request.reasoning_effort)
    if request.anthropic.HasField("thinking"):
        thinking = request.anthropic.thinking
        body["thinking"] = {"type": _name_of(THINKING_TYPES, thinking.type)}
        if thinking.budget_tokens:
            body["thinking"]["budget_tokens"] = thinking.budget_tokens
        if thinking.display:
            body["thinking"]["display"] = _name_of(THINKING_DISPLAYS, thinking.display)
    if request.user:
        body["user"] = request.user
    if request.safety_identifier:
        body["safety_identifier"] = request.safety_identifier
    if request.HasField("prompt_cache_options"):
        options = request.prompt_cache_options
        body["prompt_cache_options"] = {
            k: v
            for k, v in (
                ("mode", _name_of(PROMPT_CACHE_MODES, options.mode)),
                ("ttl", _name_of(CACHE_TTLS, options.ttl)),
            )
            if v
        }
    if request.HasField("web_search_options"):
        body["web_search_options"] = web_search_to_json(request.web_search_options)
    if request.compatibility:
        body["compatibility"] = _name_of(COMPATIBILITY, request.compatibility)
    if request.logit_bias:
        body["logit_bias"] = dict(request.logit_bias)
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    if request.modalities:
        body["modalities"] = list(request.modalities)
    for name in ("audio", "prediction", "moderation"):
        if request.HasField(name):
            body[name] = struct_to_json(getattr(request, name))
    return body


def web_search_to_json(options: chat_pb2.WebSearchOptions) -> Json:
    out: Json = {}
    if options.search_context_size:
        out["search_context_size"] = options.search_context_size
    if options.HasField("user_location"):
        where = options.user_location
        approximate = {k: getattr(where, k) for k in ("city", "country", "region", "timezone") if getattr(where, k)}
        out["user_location"] = {"type": "approximate", "approximate": approximate}
    return out


def _name_of(names: dict[str, Any], value: int) -> str | None:
    for name, number in names.items():
        if number == value:
            return name
    return None


def message_to_json(message: chat_pb2.ChatMessage) -> Json:
    out: Json = {"role": ROLE_NAMES.get(message.role, "user")}
    parts = message.content
    if len(parts) == 1 and parts[0].WhichOneof("part") == "text" and not parts[0].HasField("cache_control"):
        out["content"] = parts[0].text
    elif parts:
        out["content"] = [part_to_json(p) for p in parts]
    else:
        out["content"] = None
    if message.name:
        out["name"] = message.name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls
        ]
    if message.thinking_blocks:
        out["thinking_blocks"] = thinking_blocks_json(message.thinking_blocks)
    return out


def part_to_json(part: chat_pb2.ContentPart) -> Json:
    kind = part.WhichOneof("part")
    out: Json
    if kind == "image_url":
        image: Json = {"url": part.image_url.url}
        if part.image_url.detail:
            image["detail"] = _name_of(IMAGE_DETAILS, part.image_url.detail)
        out = {"type": "image_url", "image_url": image}
    elif kind == "file":
        file = {
            k: v
            for k, v in (
                ("file_data", part.file.file_data),
                ("file_id", part.file.file_id),
                ("filename", part.file.filename),
            )
            if v
        }
        out = {"type": "file", "file": file}
    elif kind == "input_audio":
        out = {"type": "input_audio", "input_audio": {"data": part.input_audio.data, "format": part.input_audio.format}}
    else:
        out = {"type": "text", "text": part.text}
    if part.HasField("cache_control"):
        out["cache_control"] = cache_control_to_json(part.cache_control)
    return out


def cache_control_to_json(control: chat_pb2.CacheControl) -> Json:
    out: Json = {"type": "ephemeral"}
    if control.ttl:
        out["ttl"] = _name_of(CACHE_TTLS, control.ttl)
    return out


def tool_to_json(tool: chat_pb2.Tool) -> Json:
    function: Json = {"name": tool.function.name}
    if tool.function.description:
        function["description"] = tool.function.description
    if tool.function.HasField("parameters"):
        function["parameters"] = struct_to_json(tool.function.parameters)
    if tool.function.HasField("strict"):
        function["strict"] = tool.function.strict
    out: Json = {"type": "function", "function": function}
    if tool.HasField("cache_control"):
        out["cache_control"] = cache_control_to_json(tool.cache_control)
    return out


def tool_choice_to_json(choice: chat_pb2.ToolChoice) -> Json | str | None:
    if choice.WhichOneof("choice") == "function_name":
        return {"type": "function", "function": {"name": choice.function_name}}
    return _name_of(TOOL_CHOICE_MODES, choice.mode)


def response_format_to_json(fmt: chat_pb2.ResponseFormat) -> Json:
    out: Json = {"type": _name_of(RESPONSE_FORMATS, fmt.type) or "text"}
    if fmt.HasField("json_schema"):
        spec = fmt.json_schema
        schema: Json = {"name": spec.name}
        if spec.description:
            schema["description"] = spec.description
        if spec.HasField("schema"):
            schema["schema"] = struct_to_json(spec.schema)
        if spec.HasField("strict"):
            schema["strict"] = spec.strict
        out["json_schema"] = schema
    return out


def completion_from_json(body: Any) -> chat_pb2.ChatCompletion:
    """An OpenAI ``chat.completion`` object as a message."""
    out = chat_pb2.ChatCompletion(**_identity(body, "completion"))
    for choice, param, index, reason in _choices(body):
        reply = reply_from_json(get_object(choice, "message", f"{param}.message") or {}, f"{param}.message")
        out.choices.add(index=index, message=reply, finish_reason=reason)
    if (usage := get_object(body, "usage", "usage")) is not None:
        out.usage.CopyFrom(usage_from_json(usage))
    return out


def chunk_from_json(body: Any) -> chat_pb2.ChatCompletionChunk:
    """An OpenAI ``chat.completion.chunk`` object as a message."""
    out = chat_pb2.ChatCompletionChunk(**_identity(body, "chunk"))
    for choice, param, index, reason in _choices(body):
        delta = delta_from_json(get_object(choice, "delta", f"{param}.delta") or {}, f"{param}.delta")
        out.choices.add(index=index, delta=delta, finish_reason=reason)
    if (usage := get_object(body, "usage", "usage")) is not None:
        out.usage.CopyFrom(usage_from_json(usage))
    return out


def _identity(body: Any, what: str) -> dict[str, Any]:
    """The id, creation time and model every completion object and chunk carries."""
    if not isinstance(body, dict):
        raise type_error(what, "an object")
    return {
        "id": get_str(body, "id", "id") or "",
        "created": get_int(body, "created", "created") or 0,
        "model": get_str(body, "model", "model") or "",
    }


def _choices(body: Json) -> Iterator[tuple[Json, str, int, chat_pb2.FinishReason]]:
    """Each choice object with its `param` path, index and finish reason."""
    for k, choice in enumerate(get_list(body, "choices", "choices") or ()):
        param = f"choices[{k}]"
        if not isinstance(choice, dict):
            raise type_error(param, "an object")
        reason = get_enum(choice, "finish_reason", f"{param}.finish_reason", FINISH_REASON_VALUES)
        yield (
            choice,
            param,
            get_int(choice, "index", f"{param}.index") or 0,
            reason or chat_pb2.FINISH_REASON_UNSPECIFIED,
        )


def reply_from_json(message: Json, param: str) -> chat_pb2.ChatMessage:
    out = message_from_json({**message, "role": message.get("role") or "assistant"}, param)
    out.reasoning_content = get_str(message, "reasoning_content", f"{param}.reasoning_content") or ""
    out.refusal = get_str(message, "refusal", f"{param}.refusal") or ""
    for k, annotation in enumerate(get_list(message, "annotations", f"{param}.annotations") or ()):
        out.annotations.append(annotation_from_json(annotation, f"{param}.annotations[{k}]"))
    return out


def annotation_from_json(annotation: Any, param: str) -> chat_pb2.Annotation:
    if not isinstance(annotation, dict):
        raise type_error(param, "an object")
    cited = get_object(annotation, "url_citation", f"{param}.url_citation") or {}
    where = f"{param}.url_citation"
    return chat_pb2.Annotation(
        index=get_int(annotation, "index", f"{param}.index") or 0,
        url_citation=chat_pb2.UrlCitation(
            start_index=get_int(cited, "start_index", f"{where}.start_index") or 0,
            end_index=get_int(cited, "end_index", f"{where}.end_index") or 0,
            url=get_str(cited, "url", f"{where}.url") or "",
            title=get_str(cited, "title", f"{where}.title") or "",
        ),
    )


def delta_from_json(delta: Json, param: str) -> chat_pb2.Delta:
    out = chat_pb2.Delta()
    if (role := get_enum(delta, "role", f"{param}.role", ROLES)) is not None:
        out.role = role
    for name in ("content", "reasoning_content", "refusal"):
        if (text := get_str(delta, name, f"{param}.{name}")) is not None:
            setattr(out, name, text)
    for k, call in enumerate(get_list(delta, "tool_calls", f"{param}.tool_calls") or ()):
        where = f"{param}.tool_calls[{k}]"
        fragment = tool_call_from_json(call, where)
        fragment.index = get_int(call, "index", f"{where}.index") or 0
        if "type" not in call:  # only a call's first fragment names its type
            fragment.ClearField("type")
        out.tool_calls.append(fragment)
    for k, block in enumerate(get_list(delta, "thinking_blocks", f"{param}.thinking_blocks") or ()):
        where = f"{param}.thinking_blocks[{k}]"
        parsed = thinking_block_from_json(block, where)
        parsed.index = get_int(block, "index", f"{where}.index") or 0
        out.thinking_blocks.append(parsed)
    for k, annotation in enumerate(get_list(delta, "annotations", f"{param}.annotations") or ()):
        out.annotations.append(annotation_from_json(annotation, f"{param}.annotations[{k}]"))
    return out


def usage_from_json(usage: Json) -> chat_pb2.Usage:
    prompt = get_object(usage, "prompt_tokens_details", "usage.prompt_tokens_details") or {}
    completion = get_object(usage, "completion_tokens_details", "usage.completion_tokens_details") or {}
    return chat_pb2.Usage(
        prompt_tokens=get_int(usage, "prompt_tokens", "usage.prompt_tokens") or 0,
        completion_tokens=get_int(usage, "completion_tokens", "usage.completion_tokens") or 0,
        total_tokens=get_int(usage, "total_tokens", "usage.total_tokens") or 0,
        prompt_tokens_details=chat_pb2.PromptTokensDetails(
            cached_tokens=get_int(prompt, "cached_tokens", "usage.prompt_tokens_details.cached_tokens") or 0,
            cache_creation_tokens=get_int(
                prompt, "cache_write_tokens", "usage.prompt_tokens_details.cache_write_tokens"
            )
            or get_int(prompt, "cache_creation_tokens", "usage.prompt_tokens_details.cache_creation_tokens")
            or 0,
            cache_write_5m_tokens=get_int(
                prompt, "cache_write_5m_tokens", "usage.prompt_tokens_details.cache_write_5m_tokens"
            )
            or 0,
            cache_write_1h_tokens=get_int(
                prompt, "cache_write_1h_tokens", "usage.prompt_tokens_details.cache_write_1h_tokens"
            )
            or 0,
        ),
        completion_tokens_details=chat_pb2.CompletionTokensDetails(
            reasoning_tokens=get_int(completion, "reasoning_tokens", "usage.completion_tokens_details.reasoning_tokens")
            or 0
        ),
    )

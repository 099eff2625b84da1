from chatgate.v1 import chat_pb2 as _chat_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChatCompletionRequest(_message.Message):
    __slots__ = ("model", "messages", "max_completion_tokens", "max_tokens", "temperature", "top_p", "top_k", "stop", "n", "stream_options", "tools", "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "user", "compatibility", "seed", "logprobs", "top_logprobs", "logit_bias", "presence_penalty", "frequency_penalty", "store", "metadata", "service_tier", "modalities", "audio", "prediction", "anthropic", "prompt_cache_options", "safety_identifier", "verbosity", "moderation", "web_search_options", "prompt_cache_key", "prompt_cache_retention")
    class LogitBiasEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    STREAM_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    REASONING_EFFORT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    TOP_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    LOGIT_BIAS_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_PENALTY_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_PENALTY_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    MODALITIES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    ANTHROPIC_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CACHE_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SAFETY_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    VERBOSITY_FIELD_NUMBER: _ClassVar[int]
    MODERATION_FIELD_NUMBER: _ClassVar[int]
    WEB_SEARCH_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CACHE_RETENTION_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.ChatMessage]
    max_completion_tokens: int
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    n: int
    stream_options: _chat_pb2.StreamOptions
    tools: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Tool]
    tool_choice: _chat_pb2.ToolChoice
    parallel_tool_calls: bool
    response_format: _chat_pb2.ResponseFormat
    reasoning_effort: _chat_pb2.ReasoningEffort
    user: str
    compatibility: _chat_pb2.Compatibility
    seed: int
    logprobs: bool
    top_logprobs: int
    logit_bias: _containers.ScalarMap[str, float]
    presence_penalty: float
    frequency_penalty: float
    store: bool
    metadata: _containers.ScalarMap[str, str]
    service_tier: str
    modalities: _containers.RepeatedScalarFieldContainer[str]
    audio: _struct_pb2.Struct
    prediction: _struct_pb2.Struct
    anthropic: AnthropicOptions
    prompt_cache_options: _chat_pb2.PromptCacheOptions
    safety_identifier: str
    verbosity: str
    moderation: _struct_pb2.Struct
    web_search_options: _chat_pb2.WebSearchOptions
    prompt_cache_key: str
    prompt_cache_retention: str
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_chat_pb2.ChatMessage, _Mapping]]] = ..., max_completion_tokens: _Optional[int] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., n: _Optional[int] = ..., stream_options: _Optional[_Union[_chat_pb2.StreamOptions, _Mapping]] = ..., tools: _Optional[_Iterable[_Union[_chat_pb2.Tool, _Mapping]]] = ..., tool_choice: _Optional[_Union[_chat_pb2.ToolChoice, _Mapping]] = ..., parallel_tool_calls: _Optional[bool] = ..., response_format: _Optional[_Union[_chat_pb2.ResponseFormat, _Mapping]] = ..., reasoning_effort: _Optional[_Union[_chat_pb2.ReasoningEffort, str]] = ..., user: _Optional[str] = ..., compatibility: _Optional[_Union[_chat_pb2.Compatibility, str]] = ..., seed: _Optional[int] = ..., logprobs: _Optional[bool] = ..., top_logprobs: _Optional[int] = ..., logit_bias: _Optional[_Mapping[str, float]] = ..., presence_penalty: _Optional[float] = ..., frequency_penalty: _Optional[float] = ..., store: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ..., service_tier: _Optional[str] = ..., modalities: _Optional[_Iterable[str]] = ..., audio: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., prediction: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., anthropic: _Optional[_Union[AnthropicOptions, _Mapping]] = ..., prompt_cache_options: _Optional[_Union[_chat_pb2.PromptCacheOptions, _Mapping]] = ..., safety_identifier: _Optional[str] = ..., verbosity: _Optional[str] = ..., moderation: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., web_search_options: _Optional[_Union[_chat_pb2.WebSearchOptions, _Mapping]] = ..., prompt_cache_key: _Optional[str] = ..., prompt_cache_retention: _Optional[str] = ...) -> None: ...

class AnthropicOptions(_message.Message):
    __slots__ = ("thinking", "betas")
    THINKING_FIELD_NUMBER: _ClassVar[int]
    BETAS_FIELD_NUMBER: _ClassVar[int]
    thinking: _chat_pb2.Thinking
    betas: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, thinking: _Optional[_Union[_chat_pb2.Thinking, _Mapping]] = ..., betas: _Optional[_Iterable[str]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CountTokensResponse(_message.Message):
    __slots__ = ("input_tokens", "model")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    model: str
    def __init__(self, input_tokens: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Model]
    def __init__(self, models: _Optional[_Iterable[_Union[_chat_pb2.Model, _Mapping]]] = ...) -> None: ...

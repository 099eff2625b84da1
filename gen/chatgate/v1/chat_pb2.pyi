from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_DEVELOPER: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]
    ROLE_TOOL: _ClassVar[Role]

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_TOOL_CALLS: _ClassVar[FinishReason]
    FINISH_REASON_CONTENT_FILTER: _ClassVar[FinishReason]

class ToolChoiceMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_CHOICE_MODE_UNSPECIFIED: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_AUTO: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_NONE: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_REQUIRED: _ClassVar[ToolChoiceMode]

class ResponseFormatType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESPONSE_FORMAT_TYPE_UNSPECIFIED: _ClassVar[ResponseFormatType]
    RESPONSE_FORMAT_TYPE_TEXT: _ClassVar[ResponseFormatType]
    RESPONSE_FORMAT_TYPE_JSON_OBJECT: _ClassVar[ResponseFormatType]
    RESPONSE_FORMAT_TYPE_JSON_SCHEMA: _ClassVar[ResponseFormatType]

class ReasoningEffort(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASONING_EFFORT_UNSPECIFIED: _ClassVar[ReasoningEffort]
    REASONING_EFFORT_NONE: _ClassVar[ReasoningEffort]
    REASONING_EFFORT_MINIMAL: _ClassVar[ReasoningEffort]
    REASONING_EFFORT_LOW: _ClassVar[ReasoningEffort]
    REASONING_EFFORT_MEDIUM: _ClassVar[ReasoningEffort]
    REASONING_EFFORT_HIGH: _ClassVar[ReasoningEffort]
    REASONING_EFFORT_XHIGH: _ClassVar[ReasoningEffort]
    REASONING_EFFORT_MAX: _ClassVar[ReasoningEffort]

class ThinkingDisplay(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THINKING_DISPLAY_UNSPECIFIED: _ClassVar[ThinkingDisplay]
    THINKING_DISPLAY_SUMMARIZED: _ClassVar[ThinkingDisplay]
    THINKING_DISPLAY_OMITTED: _ClassVar[ThinkingDisplay]

class ModelThinking(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_THINKING_UNSPECIFIED: _ClassVar[ModelThinking]
    MODEL_THINKING_NONE: _ClassVar[ModelThinking]
    MODEL_THINKING_BUDGET: _ClassVar[ModelThinking]
    MODEL_THINKING_ADAPTIVE: _ClassVar[ModelThinking]
    MODEL_THINKING_ADAPTIVE_ONLY: _ClassVar[ModelThinking]
    MODEL_THINKING_ALWAYS: _ClassVar[ModelThinking]

class PromptCacheMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROMPT_CACHE_MODE_UNSPECIFIED: _ClassVar[PromptCacheMode]
    PROMPT_CACHE_MODE_IMPLICIT: _ClassVar[PromptCacheMode]
    PROMPT_CACHE_MODE_EXPLICIT: _ClassVar[PromptCacheMode]

class ThinkingType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THINKING_TYPE_UNSPECIFIED: _ClassVar[ThinkingType]
    THINKING_TYPE_ENABLED: _ClassVar[ThinkingType]
    THINKING_TYPE_DISABLED: _ClassVar[ThinkingType]
    THINKING_TYPE_ADAPTIVE: _ClassVar[ThinkingType]

class Compatibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPATIBILITY_UNSPECIFIED: _ClassVar[Compatibility]
    COMPATIBILITY_LENIENT: _ClassVar[Compatibility]
    COMPATIBILITY_STRICT: _ClassVar[Compatibility]

class ImageDetail(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_DETAIL_UNSPECIFIED: _ClassVar[ImageDetail]
    IMAGE_DETAIL_AUTO: _ClassVar[ImageDetail]
    IMAGE_DETAIL_LOW: _ClassVar[ImageDetail]
    IMAGE_DETAIL_HIGH: _ClassVar[ImageDetail]

class CacheControlType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CACHE_CONTROL_TYPE_UNSPECIFIED: _ClassVar[CacheControlType]
    CACHE_CONTROL_TYPE_EPHEMERAL: _ClassVar[CacheControlType]

class CacheTtl(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CACHE_TTL_UNSPECIFIED: _ClassVar[CacheTtl]
    CACHE_TTL_FIVE_MINUTES: _ClassVar[CacheTtl]
    CACHE_TTL_ONE_HOUR: _ClassVar[CacheTtl]
    CACHE_TTL_THIRTY_MINUTES: _ClassVar[CacheTtl]
    CACHE_TTL_TWELVE_HOURS: _ClassVar[CacheTtl]

class ToolType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_TYPE_UNSPECIFIED: _ClassVar[ToolType]
    TOOL_TYPE_FUNCTION: _ClassVar[ToolType]

class ThinkingBlockType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THINKING_BLOCK_TYPE_UNSPECIFIED: _ClassVar[ThinkingBlockType]
    THINKING_BLOCK_TYPE_THINKING: _ClassVar[ThinkingBlockType]
    THINKING_BLOCK_TYPE_REDACTED: _ClassVar[ThinkingBlockType]

class AdjustmentAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADJUSTMENT_ACTION_UNSPECIFIED: _ClassVar[AdjustmentAction]
    ADJUSTMENT_ACTION_DROPPED: _ClassVar[AdjustmentAction]
    ADJUSTMENT_ACTION_ADJUSTED: _ClassVar[AdjustmentAction]
    ADJUSTMENT_ACTION_IGNORED: _ClassVar[AdjustmentAction]
ROLE_UNSPECIFIED: Role
ROLE_SYSTEM: Role
ROLE_DEVELOPER: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
ROLE_TOOL: Role
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_TOOL_CALLS: FinishReason
FINISH_REASON_CONTENT_FILTER: FinishReason
TOOL_CHOICE_MODE_UNSPECIFIED: ToolChoiceMode
TOOL_CHOICE_MODE_AUTO: ToolChoiceMode
TOOL_CHOICE_MODE_NONE: ToolChoiceMode
TOOL_CHOICE_MODE_REQUIRED: ToolChoiceMode
RESPONSE_FORMAT_TYPE_UNSPECIFIED: ResponseFormatType
RESPONSE_FORMAT_TYPE_TEXT: ResponseFormatType
RESPONSE_FORMAT_TYPE_JSON_OBJECT: ResponseFormatType
RESPONSE_FORMAT_TYPE_JSON_SCHEMA: ResponseFormatType
REASONING_EFFORT_UNSPECIFIED: ReasoningEffort
REASONING_EFFORT_NONE: ReasoningEffort
REASONING_EFFORT_MINIMAL: ReasoningEffort
REASONING_EFFORT_LOW: ReasoningEffort
REASONING_EFFORT_MEDIUM: ReasoningEffort
REASONING_EFFORT_HIGH: ReasoningEffort
REASONING_EFFORT_XHIGH: ReasoningEffort
REASONING_EFFORT_MAX: ReasoningEffort
THINKING_DISPLAY_UNSPECIFIED: ThinkingDisplay
THINKING_DISPLAY_SUMMARIZED: ThinkingDisplay
THINKING_DISPLAY_OMITTED: ThinkingDisplay
MODEL_THINKING_UNSPECIFIED: ModelThinking
MODEL_THINKING_NONE: ModelThinking
MODEL_THINKING_BUDGET: ModelThinking
MODEL_THINKING_ADAPTIVE: ModelThinking
MODEL_THINKING_ADAPTIVE_ONLY: ModelThinking
MODEL_THINKING_ALWAYS: ModelThinking
PROMPT_CACHE_MODE_UNSPECIFIED: PromptCacheMode
PROMPT_CACHE_MODE_IMPLICIT: PromptCacheMode
PROMPT_CACHE_MODE_EXPLICIT: PromptCacheMode
THINKING_TYPE_UNSPECIFIED: ThinkingType
THINKING_TYPE_ENABLED: ThinkingType
THINKING_TYPE_DISABLED: ThinkingType
THINKING_TYPE_ADAPTIVE: ThinkingType
COMPATIBILITY_UNSPECIFIED: Compatibility
COMPATIBILITY_LENIENT: Compatibility
COMPATIBILITY_STRICT: Compatibility
IMAGE_DETAIL_UNSPECIFIED: ImageDetail
IMAGE_DETAIL_AUTO: ImageDetail
IMAGE_DETAIL_LOW: ImageDetail
IMAGE_DETAIL_HIGH: ImageDetail
CACHE_CONTROL_TYPE_UNSPECIFIED: CacheControlType
CACHE_CONTROL_TYPE_EPHEMERAL: CacheControlType
CACHE_TTL_UNSPECIFIED: CacheTtl
CACHE_TTL_FIVE_MINUTES: CacheTtl
CACHE_TTL_ONE_HOUR: CacheTtl
CACHE_TTL_THIRTY_MINUTES: CacheTtl
CACHE_TTL_TWELVE_HOURS: CacheTtl
TOOL_TYPE_UNSPECIFIED: ToolType
TOOL_TYPE_FUNCTION: ToolType
THINKING_BLOCK_TYPE_UNSPECIFIED: ThinkingBlockType
THINKING_BLOCK_TYPE_THINKING: ThinkingBlockType
THINKING_BLOCK_TYPE_REDACTED: ThinkingBlockType
ADJUSTMENT_ACTION_UNSPECIFIED: AdjustmentAction
ADJUSTMENT_ACTION_DROPPED: AdjustmentAction
ADJUSTMENT_ACTION_ADJUSTED: AdjustmentAction
ADJUSTMENT_ACTION_IGNORED: AdjustmentAction

class ChatMessage(_message.Message):
    __slots__ = ("role", "content", "name", "tool_calls", "tool_call_id", "thinking_blocks", "reasoning_content", "refusal", "annotations")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    THINKING_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    REASONING_CONTENT_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    role: Role
    content: _containers.RepeatedCompositeFieldContainer[ContentPart]
    name: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    tool_call_id: str
    thinking_blocks: _containers.RepeatedCompositeFieldContainer[ThinkingBlock]
    reasoning_content: str
    refusal: str
    annotations: _containers.RepeatedCompositeFieldContainer[Annotation]
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., content: _Optional[_Iterable[_Union[ContentPart, _Mapping]]] = ..., name: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., tool_call_id: _Optional[str] = ..., thinking_blocks: _Optional[_Iterable[_Union[ThinkingBlock, _Mapping]]] = ..., reasoning_content: _Optional[str] = ..., refusal: _Optional[str] = ..., annotations: _Optional[_Iterable[_Union[Annotation, _Mapping]]] = ...) -> None: ...

class Annotation(_message.Message):
    __slots__ = ("index", "url_citation")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    URL_CITATION_FIELD_NUMBER: _ClassVar[int]
    index: int
    url_citation: UrlCitation
    def __init__(self, index: _Optional[int] = ..., url_citation: _Optional[_Union[UrlCitation, _Mapping]] = ...) -> None: ...

class UrlCitation(_message.Message):
    __slots__ = ("start_index", "end_index", "url", "title")
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    END_INDEX_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    start_index: int
    end_index: int
    url: str
    title: str
    def __init__(self, start_index: _Optional[int] = ..., end_index: _Optional[int] = ..., url: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class ContentPart(_message.Message):
    __slots__ = ("text", "image_url", "file", "input_audio", "cache_control")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    INPUT_AUDIO_FIELD_NUMBER: _ClassVar[int]
    CACHE_CONTROL_FIELD_NUMBER: _ClassVar[int]
    text: str
    image_url: ImageUrl
    file: FileInput
    input_audio: InputAudio
    cache_control: CacheControl
    def __init__(self, text: _Optional[str] = ..., image_url: _Optional[_Union[ImageUrl, _Mapping]] = ..., file: _Optional[_Union[FileInput, _Mapping]] = ..., input_audio: _Optional[_Union[InputAudio, _Mapping]] = ..., cache_control: _Optional[_Union[CacheControl, _Mapping]] = ...) -> None: ...

class ImageUrl(_message.Message):
    __slots__ = ("url", "detail")
    URL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    url: str
    detail: ImageDetail
    def __init__(self, url: _Optional[str] = ..., detail: _Optional[_Union[ImageDetail, str]] = ...) -> None: ...

class FileInput(_message.Message):
    __slots__ = ("file_data", "file_id", "filename")
    FILE_DATA_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    file_data: str
    file_id: str
    filename: str
    def __init__(self, file_data: _Optional[str] = ..., file_id: _Optional[str] = ..., filename: _Optional[str] = ...) -> None: ...

class InputAudio(_message.Message):
    __slots__ = ("data", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: str
    format: str
    def __init__(self, data: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class CacheControl(_message.Message):
    __slots__ = ("type", "ttl")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    type: CacheControlType
    ttl: CacheTtl
    def __init__(self, type: _Optional[_Union[CacheControlType, str]] = ..., ttl: _Optional[_Union[CacheTtl, str]] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("index", "id", "type", "function")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    type: ToolType
    function: FunctionCall
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., type: _Optional[_Union[ToolType, str]] = ..., function: _Optional[_Union[FunctionCall, _Mapping]] = ...) -> None: ...

class FunctionCall(_message.Message):
    __slots__ = ("name", "arguments")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments: str
    def __init__(self, name: _Optional[str] = ..., arguments: _Optional[str] = ...) -> None: ...

class ThinkingBlock(_message.Message):
    __slots__ = ("type", "thinking", "signature", "data", "index")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    type: ThinkingBlockType
    thinking: str
    signature: str
    data: str
    index: int
    def __init__(self, type: _Optional[_Union[ThinkingBlockType, str]] = ..., thinking: _Optional[str] = ..., signature: _Optional[str] = ..., data: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class Tool(_message.Message):
    __slots__ = ("type", "function", "cache_control")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    CACHE_CONTROL_FIELD_NUMBER: _ClassVar[int]
    type: ToolType
    function: FunctionDefinition
    cache_control: CacheControl
    def __init__(self, type: _Optional[_Union[ToolType, str]] = ..., function: _Optional[_Union[FunctionDefinition, _Mapping]] = ..., cache_control: _Optional[_Union[CacheControl, _Mapping]] = ...) -> None: ...

class FunctionDefinition(_message.Message):
    __slots__ = ("name", "description", "parameters", "strict")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters: _struct_pb2.Struct
    strict: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., strict: _Optional[bool] = ...) -> None: ...

class ToolChoice(_message.Message):
    __slots__ = ("mode", "function_name")
    MODE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    mode: ToolChoiceMode
    function_name: str
    def __init__(self, mode: _Optional[_Union[ToolChoiceMode, str]] = ..., function_name: _Optional[str] = ...) -> None: ...

class ResponseFormat(_message.Message):
    __slots__ = ("type", "json_schema")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    type: ResponseFormatType
    json_schema: JsonSchema
    def __init__(self, type: _Optional[_Union[ResponseFormatType, str]] = ..., json_schema: _Optional[_Union[JsonSchema, _Mapping]] = ...) -> None: ...

class JsonSchema(_message.Message):
    __slots__ = ("name", "description", "schema", "strict")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    schema: _struct_pb2.Struct
    strict: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., strict: _Optional[bool] = ...) -> None: ...

class StreamOptions(_message.Message):
    __slots__ = ("include_usage",)
    INCLUDE_USAGE_FIELD_NUMBER: _ClassVar[int]
    include_usage: bool
    def __init__(self, include_usage: _Optional[bool] = ...) -> None: ...

class Thinking(_message.Message):
    __slots__ = ("type", "budget_tokens", "display")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    type: ThinkingType
    budget_tokens: int
    display: ThinkingDisplay
    def __init__(self, type: _Optional[_Union[ThinkingType, str]] = ..., budget_tokens: _Optional[int] = ..., display: _Optional[_Union[ThinkingDisplay, str]] = ...) -> None: ...

class PromptCacheOptions(_message.Message):
    __slots__ = ("mode", "ttl")
    MODE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    mode: PromptCacheMode
    ttl: CacheTtl
    def __init__(self, mode: _Optional[_Union[PromptCacheMode, str]] = ..., ttl: _Optional[_Union[CacheTtl, str]] = ...) -> None: ...

class WebSearchOptions(_message.Message):
    __slots__ = ("search_context_size", "user_location")
    SEARCH_CONTEXT_SIZE_FIELD_NUMBER: _ClassVar[int]
    USER_LOCATION_FIELD_NUMBER: _ClassVar[int]
    search_context_size: str
    user_location: WebSearchLocation
    def __init__(self, search_context_size: _Optional[str] = ..., user_location: _Optional[_Union[WebSearchLocation, _Mapping]] = ...) -> None: ...

class WebSearchLocation(_message.Message):
    __slots__ = ("city", "country", "region", "timezone")
    CITY_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    city: str
    country: str
    region: str
    timezone: str
    def __init__(self, city: _Optional[str] = ..., country: _Optional[str] = ..., region: _Optional[str] = ..., timezone: _Optional[str] = ...) -> None: ...

class ChatCompletion(_message.Message):
    __slots__ = ("id", "created", "model", "choices", "usage", "gateway")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: int
    model: str
    choices: _containers.RepeatedCompositeFieldContainer[Choice]
    usage: Usage
    gateway: GatewayReport
    def __init__(self, id: _Optional[str] = ..., created: _Optional[int] = ..., model: _Optional[str] = ..., choices: _Optional[_Iterable[_Union[Choice, _Mapping]]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., gateway: _Optional[_Union[GatewayReport, _Mapping]] = ...) -> None: ...

class GatewayReport(_message.Message):
    __slots__ = ("adjustments", "overhead_ms")
    ADJUSTMENTS_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_MS_FIELD_NUMBER: _ClassVar[int]
    adjustments: _containers.RepeatedCompositeFieldContainer[Adjustment]
    overhead_ms: float
    def __init__(self, adjustments: _Optional[_Iterable[_Union[Adjustment, _Mapping]]] = ..., overhead_ms: _Optional[float] = ...) -> None: ...

class Adjustment(_message.Message):
    __slots__ = ("param", "action", "detail")
    PARAM_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    param: str
    action: AdjustmentAction
    detail: str
    def __init__(self, param: _Optional[str] = ..., action: _Optional[_Union[AdjustmentAction, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class Choice(_message.Message):
    __slots__ = ("index", "message", "finish_reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    message: ChatMessage
    finish_reason: FinishReason
    def __init__(self, index: _Optional[int] = ..., message: _Optional[_Union[ChatMessage, _Mapping]] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ...) -> None: ...

class ChatCompletionChunk(_message.Message):
    __slots__ = ("id", "created", "model", "choices", "usage")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: int
    model: str
    choices: _containers.RepeatedCompositeFieldContainer[ChunkChoice]
    usage: Usage
    def __init__(self, id: _Optional[str] = ..., created: _Optional[int] = ..., model: _Optional[str] = ..., choices: _Optional[_Iterable[_Union[ChunkChoice, _Mapping]]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class ChunkChoice(_message.Message):
    __slots__ = ("index", "delta", "finish_reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    delta: Delta
    finish_reason: FinishReason
    def __init__(self, index: _Optional[int] = ..., delta: _Optional[_Union[Delta, _Mapping]] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ...) -> None: ...

class Delta(_message.Message):
    __slots__ = ("role", "content", "reasoning_content", "tool_calls", "thinking_blocks", "refusal", "annotations")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REASONING_CONTENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    THINKING_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    role: Role
    content: str
    reasoning_content: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    thinking_blocks: _containers.RepeatedCompositeFieldContainer[ThinkingBlock]
    refusal: str
    annotations: _containers.RepeatedCompositeFieldContainer[Annotation]
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., content: _Optional[str] = ..., reasoning_content: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., thinking_blocks: _Optional[_Iterable[_Union[ThinkingBlock, _Mapping]]] = ..., refusal: _Optional[str] = ..., annotations: _Optional[_Iterable[_Union[Annotation, _Mapping]]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_DETAILS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_DETAILS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., prompt_tokens_details: _Optional[_Union[PromptTokensDetails, _Mapping]] = ..., completion_tokens_details: _Optional[_Union[CompletionTokensDetails, _Mapping]] = ...) -> None: ...

class PromptTokensDetails(_message.Message):
    __slots__ = ("cached_tokens", "cache_creation_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens")
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_CREATION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_5M_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_1H_TOKENS_FIELD_NUMBER: _ClassVar[int]
    cached_tokens: int
    cache_creation_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    def __init__(self, cached_tokens: _Optional[int] = ..., cache_creation_tokens: _Optional[int] = ..., cache_write_5m_tokens: _Optional[int] = ..., cache_write_1h_tokens: _Optional[int] = ...) -> None: ...

class CompletionTokensDetails(_message.Message):
    __slots__ = ("reasoning_tokens",)
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    reasoning_tokens: int
    def __init__(self, reasoning_tokens: _Optional[int] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("id", "created", "owned_by", "display_name", "aliases", "max_output_tokens", "context_window", "thinking", "efforts", "sampling", "structured_output", "retired", "successor", "source", "fast_mode")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    OWNED_BY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    EFFORTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    STRUCTURED_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    RETIRED_FIELD_NUMBER: _ClassVar[int]
    SUCCESSOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FAST_MODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: int
    owned_by: str
    display_name: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    max_output_tokens: int
    context_window: int
    thinking: ModelThinking
    efforts: _containers.RepeatedScalarFieldContainer[str]
    sampling: bool
    structured_output: bool
    retired: str
    successor: str
    source: str
    fast_mode: bool
    def __init__(self, id: _Optional[str] = ..., created: _Optional[int] = ..., owned_by: _Optional[str] = ..., display_name: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., max_output_tokens: _Optional[int] = ..., context_window: _Optional[int] = ..., thinking: _Optional[_Union[ModelThinking, str]] = ..., efforts: _Optional[_Iterable[str]] = ..., sampling: _Optional[bool] = ..., structured_output: _Optional[bool] = ..., retired: _Optional[str] = ..., successor: _Optional[str] = ..., source: _Optional[str] = ..., fast_mode: _Optional[bool] = ...) -> None: ...

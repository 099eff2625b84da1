"""Checks that hold whatever the upstream (the provider checks Claude's own rules), and the checks on
requests that arrive as raw protobuf, where proto3's open enums let any number through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatgate.v1 import chat_pb2, chat_service_pb2

from .errors import InvalidRequest

Request = chat_service_pb2.ChatCompletionRequest
STRICT = chat_pb2.COMPATIBILITY_STRICT
LENIENT = chat_pb2.COMPATIBILITY_LENIENT


def is_strict(mode: int, strict_by_default: bool) -> bool:
    """A request's compatibility mode, the gateway's default filling in when it chose none."""
    return mode == STRICT or (mode != LENIENT and strict_by_default)


def validate(request: Request, max_choices: int) -> None:
    """Checks that hold whatever the upstream; the provider checks Claude's own rules."""
    if not request.model:
        raise InvalidRequest("You must provide a model parameter.", param="model", code="missing_required_parameter")
    if not request.messages:
        raise InvalidRequest(
            "`messages` must contain at least one message.", param="messages", code="missing_required_parameter"
        )
    # slices: a loop over a protobuf repeated field costs an IndexError (docs/performance.md)
    for i, message in enumerate(request.messages[:]):
        if message.role == chat_pb2.ROLE_UNSPECIFIED:
            raise InvalidRequest(f"messages[{i}] has no role.", param=f"messages[{i}].role")
    if request.HasField("n") and not 1 <= request.n <= max_choices:
        raise InvalidRequest(f"`n` must be between 1 and {max_choices} on this gateway.", param="n")
    for name in ("max_completion_tokens", "max_tokens"):
        if request.HasField(name) and getattr(request, name) < 1:
            raise InvalidRequest(f"`{name}` must be at least 1.", param=name)
    if request.HasField("tool_choice") and request.tool_choice.WhichOneof("choice") == "function_name":
        name = request.tool_choice.function_name
        if request.tools and all(tool.function.name != name for tool in request.tools):
            raise InvalidRequest(
                f"`tool_choice` names the function `{name}`, which is not among `tools`.", param="tool_choice"
            )
    _check_range(request, "temperature", 0.0, 2.0)
    _check_range(request, "top_p", 0.0, 1.0)
    if request.HasField("top_k") and request.top_k < 0:
        raise InvalidRequest("`top_k` must not be negative.", param="top_k")


def _check_range(request: Request, name: str, low: float, high: float) -> None:
    if request.HasField(name) and not low <= getattr(request, name) <= high:
        raise InvalidRequest(f"`{name}` must be between {low:g} and {high:g}.", param=name)


@dataclass(slots=True)
class _Plan:
    """Where enums can hide in one message type: its enum fields, and the message
    fields whose types (transitively) have enum fields, each with its own plan.
    Built once per type, so the walk does no descriptor lookups."""

    enums: tuple[tuple[str, frozenset[int], bool], ...] = ()  # name, known numbers, repeated
    messages: tuple[tuple[str, bool, _Plan], ...] = ()  # name, repeated, the field type's plan


_plans: dict[str, _Plan | None] = {}


def _plan(descriptor: Any) -> _Plan | None:
    """None when no enum can occur anywhere below this type (Struct, Usage...)."""
    name = descriptor.full_name
    if name in _plans:
        return _plans[name]
    plan = _Plan()
    _plans[name] = plan  # a recursive type refers to itself while it is planned
    enums, messages = [], []
    for field in descriptor.fields:
        if field.type == field.TYPE_ENUM:
            enums.append((field.name, frozenset(field.enum_type.values_by_number), field.is_repeated))
        elif field.type == field.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            child = _plan(field.message_type)
            if child is not None:
                messages.append((field.name, field.is_repeated, child))
    if not enums and not messages:
        _plans[name] = None
        return None
    plan.enums, plan.messages = tuple(enums), tuple(messages)
    return plan


def unknown_enum_field(message: Any) -> str | None:
    """The path of the first enum field whose number the schema does not define, if any
    (for example ``messages[1].content[0].cache_control.ttl``)."""
    plan = _plan(message.DESCRIPTOR)
    found = None if plan is None else _first_unknown(message, plan)
    if found is None:
        return None
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in reversed(found)).lstrip(".")


def check_enums(message: Any) -> None:
    """Raises ``InvalidRequest`` naming the field when an enum holds a number this server does not know.

    proto3 enums are open: a client built from a newer schema can send any
    number, and the gateway must say so rather than guess what it meant.
    """
    field = unknown_enum_field(message)
    if field is not None:
        raise InvalidRequest(f"`{field}` has a value this server does not know.", param=field, code="invalid_value")


def _first_unknown(message: Any, plan: _Plan) -> list[str | int] | None:
    """The failing path, innermost part first, or None. Empty repeated fields are skipped by
    length: iterating one costs more than the rest of the check."""
    for name, known, repeated in plan.enums:
        value = getattr(message, name)
        if repeated:
            for i, item in enumerate(value[:]):  # slices: see `validate`
                if item not in known:
                    return [i, name]
        elif value not in known:
            return [name]
    for name, repeated, child in plan.messages:
        if repeated:
            items = getattr(message, name)
            if len(items):
                for i, item in enumerate(items[:]):
                    found = _first_unknown(item, child)
                    if found is not None:
                        return [*found, i, name]
        elif message.HasField(name):
            found = _first_unknown(getattr(message, name), child)
            if found is not None:
                return [*found, name]
    return None

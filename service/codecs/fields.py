"""Typed readers for JSON request bodies: each type error names the field as the client spelled it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2

from service.core.errors import InvalidRequest

Json = dict[str, Any]
T = TypeVar("T")


def type_error(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"`{param}` must be {expected}.", param=param, code="invalid_type")


def get_str(obj: Mapping[str, Any], key: str, param: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise type_error(param, "a string")


def get_int(obj: Mapping[str, Any], key: str, param: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise type_error(param, "an integer")
    return value


def get_number(obj: Mapping[str, Any], key: str, param: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise type_error(param, "a number")
    return float(value)


def get_bool(obj: Mapping[str, Any], key: str, param: str) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise type_error(param, "a boolean")


def get_object(obj: Mapping[str, Any], key: str, param: str) -> Json | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise type_error(param, "an object")


def get_list(obj: Mapping[str, Any], key: str, param: str) -> list[Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, list):
        return value
    raise type_error(param, "an array")


def get_enum(obj: Mapping[str, Any], key: str, param: str, values: Mapping[str, T]) -> T | None:
    name = get_str(obj, key, param)
    if name is None:
        return None
    if name not in values:
        allowed = ", ".join(f"`{v}`" for v in values)
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise InvalidRequest(f"`{param}` must be one of {allowed}; got `{shown}`.", param=param, code="invalid_value")
    return values[name]


def to_struct(value: Json, param: str) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    try:
        struct.update(value)
    except (ValueError, TypeError):
        raise type_error(param, "a JSON object") from None
    except RecursionError:
        raise InvalidRequest(f"`{param}` is nested too deeply.", param=param, code="invalid_value") from None
    return struct


def struct_to_json(struct: struct_pb2.Struct, param: str = "") -> Json:
    """A Struct as plain JSON; numbers that are whole come back as integers,
    since protobuf stores every JSON number as a double. One nested past the
    interpreter's recursion limit is the client's error, naming ``param``."""
    try:
        return _restore_ints(json_format.MessageToDict(struct))  # type: ignore[no-any-return]
    except RecursionError:
        raise InvalidRequest(f"`{param}` is nested too deeply.", param=param or None, code="invalid_value") from None


def _restore_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_ints(v) for v in value]
    return value

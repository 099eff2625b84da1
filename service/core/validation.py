"""Checks on a request message that hold for every surface and provider."""

from __future__ import annotations

from typing import Any

# Well-known types (Struct, Value...) carry no enums of ours: skip walking them.
_SKIP_PREFIX = "google.protobuf."


def unknown_enum_field(message: Any, prefix: str = "") -> str | None:
    """The path of the first enum field whose number the schema does not define, if any.

    proto3 enums are open, so a client built from a newer schema can send any
    number; the gateway must say so rather than guess. Only set fields are
    visited (``ListFields``), so the walk costs little on ordinary requests.
    """
    for field, value in message.ListFields():
        path = prefix + field.name
        if field.type == field.TYPE_ENUM:
            known = field.enum_type.values_by_number
            if field.is_repeated:
                for i, item in enumerate(value):
                    if item not in known:
                        return f"{path}[{i}]"
            elif value not in known:
                return str(path)
        elif field.type == field.TYPE_MESSAGE and not field.message_type.full_name.startswith(_SKIP_PREFIX):
            if field.message_type.GetOptions().map_entry:
                continue  # maps here hold scalars only
            items = (
                [(f"{path}[{i}].", item) for i, item in enumerate(value)]
                if field.is_repeated
                else [(path + ".", value)]
            )
            for where, item in items:
                found: str | None = unknown_enum_field(item, where)
                if found is not None:
                    return found
    return None

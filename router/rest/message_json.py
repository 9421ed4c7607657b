"""Protocol answers (server and model metadata, model config) as the REST binding writes them.

protobuf's own JSON printer writes 64-bit integers as strings ("shape": ["-1", "30"]), as
proto3's JSON mapping says; the REST binding, Triton's tools and the KServe client read shapes
and dims as numbers. So this walks the message with its descriptor: field names as declared,
enums by name, every integer a number, fields at their default left out.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def to_json(message: Message) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for descriptor, value in message.ListFields():
        if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            value_field = descriptor.message_type.fields_by_name["value"]
            document[descriptor.name] = {key: _value(value_field, item) for key, item in value.items()}
        elif descriptor.is_repeated:
            document[descriptor.name] = [_value(descriptor, item) for item in value]
        else:
            document[descriptor.name] = _value(descriptor, value)
    return document


def _value(descriptor: FieldDescriptor, value: Any) -> Any:
    if descriptor.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json(value)
    if descriptor.type == FieldDescriptor.TYPE_ENUM:
        return descriptor.enum_type.values_by_number[value].name
    if descriptor.type == FieldDescriptor.TYPE_BYTES:
        return value.decode(errors="replace")
    return value


def metadata_json(response: Message) -> dict[str, Any]:
    """Server or model metadata with every field the REST binding lists, empty ones included."""
    document = to_json(response)
    for name, field in response.DESCRIPTOR.fields_by_name.items():
        if field.is_repeated:
            document.setdefault(name, [])
    for tensor in (*document.get("inputs", ()), *document.get("outputs", ())):
        tensor.setdefault("shape", [])
    return document

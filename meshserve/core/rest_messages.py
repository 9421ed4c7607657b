"""Protocol answers (server and model metadata, model config) as the REST binding writes them,
for the router's REST listener and the adapters' alike.

protobuf's own JSON printer writes 64-bit integers as strings ("shape": ["-1", "30"]), as
proto3's JSON mapping says; the REST binding, Triton's tools and the KServe client read shapes
and dims as numbers. So this walks the message with its descriptor: field names as declared,
enums by name, every integer a number, fields at their default left out.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def to_json(message: Message, defaults: bool = False) -> dict[str, Any]:
    """MESSAGE as the REST binding writes it; with DEFAULTS, scalar fields at their default too
    (statistics: Triton writes every count, zeros included, and its tools read them all)."""
    document: dict[str, Any] = {}
    fields = message.ListFields()
    if defaults:
        present = {descriptor.name for descriptor, _ in fields}
        fields = [*fields, *((d, getattr(message, d.name)) for d in message.DESCRIPTOR.fields
                             if d.name not in present and not d.is_repeated and d.containing_oneof is None)]
    for descriptor, value in fields:
        if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            value_field = descriptor.message_type.fields_by_name["value"]
            document[descriptor.name] = {key: _value(value_field, item) for key, item in value.items()}
        elif descriptor.is_repeated:
            document[descriptor.name] = [_value(descriptor, item, defaults) for item in value]
        else:
            document[descriptor.name] = _value(descriptor, value, defaults)
    return document


def _value(descriptor: FieldDescriptor, value: Any, defaults: bool = False) -> Any:
    if descriptor.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json(value, defaults)
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

"""Check an inference request against a model's signature before any work is done.

Used by the router (so bad requests never cross the mesh) and by adapters (so a direct
caller gets the same answer). Every failure names the input and the reason.

Every check costs time in proportion to what the client actually sent, and is made before
anything is allocated for the request: element counts are compared with the bytes or
values present (a BYTES element needs at least its 4-byte length prefix), so a tiny request
claiming a huge shape is refused, not allocated. Client-sent names are quoted by a bounded
prefix (`errors.quoted`).
"""

from __future__ import annotations

from meshserve.core.datatypes import element_size
from meshserve.core.errors import InvalidInput, quoted
from meshserve.core.model_package import Signature
from meshserve.core.strict_model import repeated

# Which typed field carries each datatype, for the check and for adapters/tensor_codec.py. The
# specification gives FP16 no typed field; meshserve accepts and emits it in fp32_contents, so
# clients without raw support can still use it.
TYPED_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP16": "fp32_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
BYTES_PREFIX = 4  # each raw BYTES element starts with its 4-byte little-endian length


def element_count(shape) -> int:
    """Elements in a tensor of SHAPE (1 for a scalar's empty shape); the one count of the mesh."""
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def one_value_per_row(declared, shape) -> bool:
    """An input declared [-1] (one value per row) sent as [rows, 1], as Triton's tools send it
    (ModelConfig dims [1] reshaped to []); the adapter hands the model [rows]."""
    return list(declared) == [-1] and len(shape) == 2 and shape[1] == 1


def has_typed_contents(tensor) -> bool:
    """True when any typed `contents` field of TENSOR holds a value (cost: one look per field)."""
    return tensor.HasField("contents") and bool(tensor.contents.ListFields())


def check_request(request, signature: Signature) -> None:
    """Raise InvalidInput for the first problem of a ModelInferRequest, else return."""
    names = [t.name for t in request.inputs]
    for name in repeated(names):
        raise InvalidInput(name, "sent more than once")
    declared = {s.name for s in signature.inputs}
    for tensor in request.inputs:
        if tensor.name not in declared:
            raise InvalidInput(tensor.name, f"not an input of this model; it takes {', '.join(sorted(declared))}")
    sent = set(names)
    for spec in signature.inputs:
        if spec.name not in sent:
            raise InvalidInput(spec.name, f"missing; this model needs {spec.datatype} {spec.shape}")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(None, f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; send one per input, in order")
    rows: tuple[str, int] | None = None
    for index, tensor in enumerate(request.inputs):
        spec = signature.input(tensor.name)
        if tensor.datatype != spec.datatype:
            raise InvalidInput(tensor.name, f"datatype {quoted(tensor.datatype) or '(empty)'} but the model takes {spec.datatype}")
        if not (spec.accepts_shape(tensor.shape) or one_value_per_row(spec.shape, tensor.shape)):
            raise InvalidInput(tensor.name, f"shape {list(tensor.shape)} but the model takes {spec.shape} (-1 = any size)")
        count = element_count(tensor.shape)
        if raw:
            _check_raw(tensor.name, spec.datatype, tensor.shape, count, len(raw[index]))
            if has_typed_contents(tensor):
                raise InvalidInput(tensor.name, "has both typed contents and raw_input_contents; send the values "
                                                "one way only (raw for every input, or typed for every input)")
        else:
            values = len(getattr(tensor.contents, TYPED_FIELD[spec.datatype]))
            if values != count:
                raise InvalidInput(tensor.name, f"{TYPED_FIELD[spec.datatype]} holds {values} values but shape "
                                                f"{list(tensor.shape)} needs {count}")
        if spec.shape and spec.shape[0] == -1:
            # Inputs with a batch dimension describe the same rows: their counts must agree.
            if rows is None:
                rows = (tensor.name, tensor.shape[0])
            elif tensor.shape[0] != rows[1]:
                raise InvalidInput(tensor.name, f"has {tensor.shape[0]} rows but input '{quoted(rows[0])}' has "
                                                f"{rows[1]}; send the same number of rows in every input")
    # Each requested output is encoded once per request: asking for one 40,000 times would
    # multiply the answer's size and work.
    for name in repeated(o.name for o in request.outputs):
        raise InvalidInput(name, "requested more than once", kind="requested output")
    for requested in request.outputs:
        if signature.output(requested.name) is None:
            raise InvalidInput(requested.name, f"no such output; outputs are {', '.join(s.name for s in signature.outputs)}", kind="requested output")


def _check_raw(name: str, datatype: str, shape, count: int, present: int) -> None:
    size = element_size(datatype)
    if size is not None:
        expected = count * size
        if present != expected:
            raise InvalidInput(name, f"raw contents hold {present} bytes but shape {list(shape)} of {datatype} needs {expected}")
    elif count * BYTES_PREFIX > present:
        raise InvalidInput(name, f"raw BYTES contents hold {present} bytes, too few for the {count} elements of shape "
                                 f"{list(shape)} (each needs a {BYTES_PREFIX}-byte length prefix)")

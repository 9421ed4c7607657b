"""Check an inference request against a model's signature before any work is done.

Used by the router (so bad requests never cross the mesh) and by adapters (so a direct
caller gets the same answer). Every failure names the input and the reason.
"""

from __future__ import annotations

from meshserve.core.datatypes import element_size
from meshserve.core.errors import InvalidInput
from meshserve.core.model_package import Signature
from meshserve.core.strict_model import repeated


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
    for index, tensor in enumerate(request.inputs):
        spec = signature.input(tensor.name)
        if tensor.datatype != spec.datatype:
            raise InvalidInput(tensor.name, f"datatype {tensor.datatype or '(empty)'} but the model takes {spec.datatype}")
        if not spec.accepts_shape(tensor.shape):
            raise InvalidInput(tensor.name, f"shape {list(tensor.shape)} but the model takes {spec.shape} (-1 = any size)")
        size = element_size(spec.datatype)
        if raw and size is not None:
            count = 1
            for dim in tensor.shape:
                count *= dim
            expected = count * size
            if len(raw[index]) != expected:
                raise InvalidInput(tensor.name, f"raw contents hold {len(raw[index])} bytes but shape {list(tensor.shape)} of {spec.datatype} needs {expected}")
    for requested in request.outputs:
        if signature.output(requested.name) is None:
            raise InvalidInput(requested.name, f"no such output; outputs are {', '.join(s.name for s in signature.outputs)}", kind="requested output")

"""The body of a REST inference, both ways, and its binary tensor data extension.

Here, not in the router, because both REST listeners read and write these bodies: the router's
(which forwards) and each adapter's (which Envoy's front reaches directly, one proxy hop).

A request is a JSON object (`id`, `parameters`, `inputs`, `outputs`), optionally followed by
the binary data of some inputs: the `Inference-Header-Content-Length` header says where the
JSON ends, and each binary input says its size in `parameters.binary_data_size`, in input
order. It becomes the same `ModelInferRequest` a gRPC client sends, every input in
`raw_input_contents`. The answer is JSON, with the outputs the client asked for as binary
(`binary_data` on a requested output, or `binary_data_output` on the request) appended after it.

Every mistake is an InvalidInput naming the input (or the field) and the reason; sizes are
compared with the bytes actually sent before anything is allocated for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.datatypes import NUMPY_DTYPES
from meshserve.core.errors import InvalidInput, quoted
from meshserve.core.strict_model import field_path
from meshserve.core.rest_tensors import raw_from_json, raw_of, values_of

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_SIZE = "binary_data_size"
BINARY_OUTPUT = "binary_data"
ALL_BINARY = "binary_data_output"
# Parameters of the REST binding only: they say how tensors travel over HTTP, not what to compute.
REST_PARAMETERS = (BINARY_SIZE, BINARY_OUTPUT, ALL_BINARY)

Parameter = Union[StrictBool, StrictInt, StrictFloat, StrictStr]
Dim = Annotated[int, Field(strict=True, ge=0)]


class _Body(BaseModel):
    # Unknown fields are ignored, as other servers of the protocol do: clients add their own.
    model_config = ConfigDict(extra="ignore")


class InputTensor(_Body):
    name: StrictStr
    shape: list[Dim]
    datatype: StrictStr
    parameters: dict[str, Parameter] = {}
    data: Any = None


class RequestedOutput(_Body):
    name: StrictStr
    parameters: dict[str, Parameter] = {}


class InferenceBody(_Body):
    id: StrictStr = ""
    parameters: dict[str, Parameter] = {}
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] = []


@dataclass
class RestInference:
    """A REST inference as the servicer takes it, and how its client wants the outputs."""

    request: pb.ModelInferRequest
    binary_outputs: set[str] = field(default_factory=set)
    all_binary: bool = False


def _parameter(target, value) -> None:
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    else:
        target.string_param = value


def _json_of(parameter: pb.InferParameter):
    choice = parameter.WhichOneof("parameter_choice")
    return getattr(parameter, choice) if choice else None


def _parse(header: bytes) -> InferenceBody:
    try:
        document = json.loads(header)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(None, f"the request body is not valid JSON ({exc}); send a JSON object with "
                                 "'inputs'") from None
    except RecursionError:
        raise InvalidInput(None, "the request body nests too deeply to be an inference request") from None
    if not isinstance(document, dict):
        raise InvalidInput(None, "the request body must be a JSON object with 'inputs'")
    try:
        return InferenceBody.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] in ("inputs", "outputs") and isinstance(loc[1], int):
            items = document.get(loc[0])
            name = items[loc[1]].get("name") if isinstance(items[loc[1]], dict) else None
            if isinstance(name, str) and len(loc) > 2:
                kind = "input" if loc[0] == "inputs" else "requested output"
                raise InvalidInput(name, f"{field_path(loc[2:])}: {error['msg']}", kind=kind) from None
        raise InvalidInput(None, f"field '{field_path(loc)}': {error['msg']}") from None


def parse_request(model: str, version: str, body: bytes, header_length: str | None,
                  max_bytes: int) -> RestInference:
    """The ModelInferRequest a REST BODY stands for (HEADER_LENGTH: the extension's header, if sent).

    JSON values take more room as raw bytes than as text ("0," is an FP64 of 8 bytes), so the
    inputs' raw size is held to MAX_BYTES too, the limit a gRPC client's message meets."""
    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or not 0 < int(header_length) <= len(body):
            raise InvalidInput(None, f"{HEADER_LENGTH} is {quoted(header_length)} but the body has {len(body)} "
                                     "bytes; send the length of the JSON part in bytes")
        body, binary = body[:int(header_length)], memoryview(body)[int(header_length):]
    parsed = _parse(body)
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=parsed.id)
    for key, value in parsed.parameters.items():
        if key not in REST_PARAMETERS:
            _parameter(request.parameters[key], value)
    offset = total = 0
    for tensor in parsed.inputs:
        if tensor.datatype not in NUMPY_DTYPES:
            raise InvalidInput(tensor.name, f"datatype {quoted(tensor.datatype)} is not one of the protocol's "
                                            f"({', '.join(NUMPY_DTYPES)})")
        size = tensor.parameters.get(BINARY_SIZE)
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(tensor.name, f"{BINARY_SIZE} must be a byte count, not {size!r}")
            if tensor.data is not None:
                raise InvalidInput(tensor.name, f"has both data and {BINARY_SIZE}; send its values one way only")
            if offset + size > len(binary):
                raise InvalidInput(tensor.name, f"{BINARY_SIZE} is {size} but only {len(binary) - offset} bytes of "
                                                f"binary data follow the JSON for it; check {HEADER_LENGTH} and the "
                                                "sizes of the binary inputs")
            raw = bytes(binary[offset:offset + size])
            offset += size
        elif tensor.data is None:
            raise InvalidInput(tensor.name, f"has no data; send 'data' or binary data with {BINARY_SIZE}")
        else:
            raw = raw_from_json(tensor.name, tensor.datatype, tensor.shape, tensor.data)
        total += len(raw)
        if total > max_bytes:
            raise InvalidInput(tensor.name, f"the inputs' values take more than MESHSERVE_MAX_MESSAGE_BYTES "
                                            f"({max_bytes} bytes) from here on; send fewer rows per request")
        sent = request.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        for key, value in tensor.parameters.items():
            if key not in REST_PARAMETERS:
                _parameter(sent.parameters[key], value)
        request.raw_input_contents.append(raw)
    if offset != len(binary):
        raise InvalidInput(None, f"{len(binary) - offset} bytes of binary data follow the JSON but the inputs' "
                                 f"{BINARY_SIZE} account for {offset} of {len(binary)}; check {HEADER_LENGTH} "
                                 "and the sizes")
    inference = RestInference(request, all_binary=parsed.parameters.get(ALL_BINARY) is True)
    for output in parsed.outputs:
        wanted = request.outputs.add(name=output.name)
        for key, value in output.parameters.items():
            if key == BINARY_OUTPUT:
                if value is True:
                    inference.binary_outputs.add(output.name)
            elif key not in REST_PARAMETERS:
                _parameter(wanted.parameters[key], value)
    return inference


def response_body(response: pb.ModelInferResponse, inference: RestInference) -> tuple[bytes, int | None]:
    """The REST answer to RESPONSE: the body, and the length of its JSON part when binary outputs follow."""
    raw = list(response.raw_output_contents)
    outputs, binary = [], []
    for index, tensor in enumerate(response.outputs):
        contents = raw[index] if index < len(raw) else None
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        parameters = {k: _json_of(v) for k, v in tensor.parameters.items()}
        if inference.all_binary or tensor.name in inference.binary_outputs:
            data = raw_of(tensor.datatype, contents, tensor.contents)
            binary.append(data)
            parameters[BINARY_SIZE] = len(data)
        else:
            values = values_of(tensor.datatype, contents, tensor.contents)
            entry["data"] = values if isinstance(values, list) else values.tolist()
        if parameters:
            entry["parameters"] = parameters
        outputs.append(entry)
    answer: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version,
                              "id": response.id}
    if response.parameters:
        answer["parameters"] = {k: _json_of(v) for k, v in response.parameters.items()}
    answer["outputs"] = outputs
    header = json.dumps(answer, allow_nan=True).encode()
    if not binary:
        return header, None
    return header + b"".join(binary), len(header)

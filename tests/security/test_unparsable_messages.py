"""Bytes that are not a request message get INVALID_ARGUMENT and one log line per kind, not
UNKNOWN and a traceback per request (6,144 tracebacks in one fuzz run before)."""

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb

from conftest import EXAMPLES

GARBAGE = [b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x05ab", b"\x08" * 7]


def test_unparsable_requests_are_invalid_argument_logged_once_per_kind(adapter_factory):
    adapter = adapter_factory(EXAMPLES / "iris_species")
    with grpc.insecure_channel(adapter.address) as channel:
        raw_infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                        request_serializer=None, response_deserializer=None)
        for _ in range(50):
            for garbage in GARBAGE:
                try:
                    raw_infer(garbage, timeout=10)
                    raise AssertionError("garbage was answered")
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
                    assert "not a valid inference.ModelInferRequest message" in exc.details()
        request = pb.ModelInferRequest(model_name="iris-species")
        request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                    request_serializer=pb.ModelInferRequest.SerializeToString,
                                    response_deserializer=pb.ModelInferResponse.FromString)
        assert infer(request, timeout=10).outputs[0].name == "species"
    output = adapter.output
    assert "Traceback" not in output
    refused = [line for line in output.splitlines() if "unparsable request" in line]
    assert refused and len(refused) <= 3, refused  # 1st and 10th and 100th of the one kind, not 200 lines

"""Every method of the inference service is answered by meshserve's own code, in the router and
in the adapters: none falls through to the generated servicer, which raises NotImplementedError
and logs a traceback on every call."""

import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from meshserve.adapters.server import AdapterInferenceServicer
from meshserve.router.data_plane.inference_service import RouterInferenceServicer

METHODS = [m.name for m in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods]


@pytest.mark.parametrize("servicer", [RouterInferenceServicer, AdapterInferenceServicer])
def test_no_method_is_left_to_the_generated_servicer(servicer):
    generated = pb_grpc.GRPCInferenceServiceServicer
    left = [name for name in METHODS if getattr(servicer, name) is getattr(generated, name)]
    assert not left, f"{servicer.__name__} leaves {left} to raise NotImplementedError"

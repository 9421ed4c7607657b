"""The classification extension: top-k classes as Triton's strings, and refusals naming the output."""

import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.classification import class_counts, classify
from meshserve.core.errors import InvalidInput
from meshserve.core.model_package import Signature

SIGNATURE = Signature.model_validate({
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 3], "features": ["cat", "dog", "owl"]},
                {"name": "name", "datatype": "BYTES", "shape": [-1]}]})


def request_for(output: str, **parameter) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    wanted = request.outputs.add(name=output)
    for kind, value in parameter.items():
        setattr(wanted.parameters["classification"], kind, value)
    return request


def test_top_classes_per_row_best_first_with_labels():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=np.float32)
    top = classify(scores, 2, ["cat", "dog", "owl"], batched=True)
    assert top.shape == (2, 2)
    assert [e.decode() for e in top[0]] == ["0.700000:1:dog", "0.200000:2:owl"]
    assert [e.decode() for e in top[1]] == ["0.500000:0:cat", "0.300000:2:owl"]


def test_without_labels_and_with_more_classes_asked_than_there_are():
    top = classify(np.array([0.2, 0.9]), 5, None, batched=False)
    assert [e.decode() for e in top] == ["0.900000:1", "0.200000:0"]


def test_a_count_is_read_from_int64_or_uint64_parameters():
    assert class_counts(request_for("scores", int64_param=2), SIGNATURE) == {"scores": 2}
    assert class_counts(request_for("scores", uint64_param=1), SIGNATURE) == {"scores": 1}
    assert class_counts(request_for("scores"), SIGNATURE) == {}


@pytest.mark.parametrize("output, parameter, reason", [
    ("scores", {"int64_param": 0}, "positive integer"),
    ("scores", {"string_param": "3"}, "positive integer"),
    ("name", {"int64_param": 2}, "BYTES output cannot be classified"),
])
def test_bad_requests_are_refused_naming_the_output(output, parameter, reason):
    with pytest.raises(InvalidInput) as refused:
        class_counts(request_for(output, **parameter), SIGNATURE)
    assert f"requested output '{output}'" in refused.value.message and reason in refused.value.message

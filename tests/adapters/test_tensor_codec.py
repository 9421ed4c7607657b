"""Every V2 datatype and shape survives encoding and decoding, typed and raw."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from tritonclient.grpc import service_pb2 as pb
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from meshserve.adapters.tensor_codec import NUMPY_DTYPES, decode_tensor, encode_tensor
from meshserve.core.errors import InvalidInput

NUMERIC = [name for name in NUMPY_DTYPES if name != "BYTES"]
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


def numeric_arrays(datatype: str):
    dtype = NUMPY_DTYPES[datatype]
    elements = None
    if dtype.kind == "f":
        # Typed FP16/FP32 travel as float32; NaN never equals itself, so compare with equal_nan.
        elements = st.floats(width=dtype.itemsize * 8, allow_nan=True, allow_infinity=True)
    return hnp.arrays(dtype, shapes, elements=elements)


bytes_arrays = hnp.arrays(np.dtype(object), shapes, elements=st.binary(max_size=20))


def round_trip(array: np.ndarray, datatype: str, raw: bool) -> np.ndarray:
    tensor = pb.ModelInferResponse.InferOutputTensor(name="t")
    data = encode_tensor(array, datatype, tensor, raw=raw)
    wire = pb.ModelInferResponse.InferOutputTensor.FromString(tensor.SerializeToString())
    return decode_tensor("t", wire.datatype, wire.shape, wire.contents, data)


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype.kind == "f":
        np.testing.assert_array_equal(a, b)  # treats NaN == NaN
    else:
        assert a.tolist() == b.tolist()


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("datatype", NUMERIC)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_numeric_tensors_round_trip(datatype, raw, data):
    array = data.draw(numeric_arrays(datatype))
    assert_same(array, round_trip(array, datatype, raw))


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@settings(max_examples=60, deadline=None)
@given(array=bytes_arrays)
def test_bytes_tensors_round_trip(raw, array):
    assert_same(array, round_trip(array, "BYTES", raw))


@settings(max_examples=40, deadline=None)
@given(array=bytes_arrays)
def test_raw_bytes_layout_is_tritonclients(array):
    """Our raw BYTES bytes are what tritonclient writes and reads."""
    tensor = pb.ModelInferResponse.InferOutputTensor()
    ours = encode_tensor(array, "BYTES", tensor, raw=True)
    theirs = serialize_byte_tensor(array)
    assert ours == (theirs.item() if theirs.size else b"")
    if array.size:
        assert deserialize_bytes_tensor(ours).tolist() == array.reshape(-1).tolist()


@pytest.mark.parametrize("datatype", NUMERIC)
def test_truncated_raw_contents_are_refused_naming_the_input(datatype):
    raw = np.zeros(6, dtype=NUMPY_DTYPES[datatype]).tobytes()[:-1]
    with pytest.raises(InvalidInput, match=r"input 'x'.*needs"):
        decode_tensor("x", datatype, [2, 3], None, raw)


def test_truncated_raw_bytes_element_is_refused():
    data = serialize_byte_tensor(np.array([b"abc", b"defg"], dtype=object)).item()
    with pytest.raises(InvalidInput, match="element 1"):
        decode_tensor("words", "BYTES", [2], None, data[:-2])


def test_typed_contents_of_the_wrong_length_are_refused():
    contents = pb.InferTensorContents(fp64_contents=[1.0, 2.0])
    with pytest.raises(InvalidInput, match="holds 2 values but shape \\[3\\] needs 3"):
        decode_tensor("x", "FP64", [3], contents, None)


def test_typed_integers_that_do_not_fit_are_refused():
    contents = pb.InferTensorContents(int_contents=[300])
    with pytest.raises(InvalidInput, match="do not fit in INT8"):
        decode_tensor("x", "INT8", [1], contents, None)

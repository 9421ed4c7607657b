"""`meshserve records export`: each recorded tensor keeps its datatype in the exported table."""

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from meshserve.sidecars.records.export import export


def record(request_id: str, code: str = "OK", outputs: dict | None = None) -> dict:
    return {"request_id": request_id, "slot": "answer", "time": 1796635847.5, "model": "digits", "version": "1",
            "role": "primary", "side": "adapter", "code": code, "error": "" if code == "OK" else "bad input",
            "latency_s": 0.002, "digest": "ab", "trace_id": "",
            "inputs": {"pixels": {"datatype": "FP32", "shape": [2, 2], "values": [[0.5, 1.0], [2.0, 3.5]]},
                       "region": {"datatype": "BYTES", "shape": [2, 1], "values": [["north"], ["south"]]}},
            "outputs": outputs}


OUTPUTS = {"digit": {"datatype": "INT64", "shape": [2], "values": [3, 7]},
           "count": {"datatype": "UINT8", "shape": [2, 1], "values": [[1], [2]]},
           "flag": {"datatype": "BOOL", "shape": [2], "values": [True, False]},
           "score": {"datatype": "FP64", "shape": [2], "values": [1.0, 2.0]}}
TYPES = {"digit": pa.int64(), "count": pa.uint8(), "flag": pa.bool_(), "score": pa.float64(), "pixels_0": pa.float32(),
         "region": pa.string()}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_every_recorded_datatype_is_kept_in_the_exported_table(tmp_path, fmt):
    path = tmp_path / f"records.{fmt}"
    # a refused request first: its outputs are missing, which must not change the columns' types
    assert export([record("a", code="INVALID_ARGUMENT"), record("b", outputs=OUTPUTS)], path, fmt) == 4
    table = pq.read_table(path) if fmt == "parquet" else pacsv.read_csv(path)
    for column, kind in TYPES.items():
        if fmt == "csv":  # CSV holds no widths: integers read back as int64, floating points as double
            kind = pa.int64() if pa.types.is_integer(kind) else pa.float64() if pa.types.is_floating(kind) else kind
        assert table.schema.field(column).type == kind, column
    assert table.column("digit").to_pylist() == [None, None, 3, 7]
    assert table.column("score").to_pylist() == [None, None, 1.0, 2.0]
    if fmt == "parquet":  # and pandas keeps them too, with the refused request's outputs as <NA>
        frame = table.to_pandas()
        assert {c: str(frame[c].dtype) for c in ("digit", "count", "flag", "score", "pixels_0")} == {
            "digit": "Int64", "count": "UInt8", "flag": "boolean", "score": "float64", "pixels_0": "float32"}
        assert frame["digit"].tolist()[2:] == [3, 7]

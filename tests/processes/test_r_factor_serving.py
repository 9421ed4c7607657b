"""A randomForest with factor inputs, served by a real `meshserve adapter` process to stock
tritonclient: it answers what Rscript answers although model.yaml declares a level the forest
never saw (randomForest alone would refuse every such request), and a request using that level
is INVALID_ARGUMENT naming the column, the value and the levels the model knows."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import yaml
from tritonclient.utils import InferenceServerException

from conftest import RunningProcess, free_port, meshserve_argv
from r_oracle import r_dataset, rscript, rscript_available, rscript_predictions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not rscript_available(), reason="R is missing: run scripts/setup.sh"),
]


@pytest.fixture(scope="module")
def forest_adapter(tmp_path_factory):
    folder = tmp_path_factory.mktemp("r-breaks") / "breaks"
    folder.mkdir()
    rscript(f"suppressPackageStartupMessages(library(randomForest)); set.seed(2); "
            f"saveRDS(randomForest(breaks ~ wool + tension, data = warpbreaks, ntree = 40), "
            f"{str(folder / 'model.rds')!r})")
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "breaks", "version": "1", "runtime": "r",
        "signature": {"inputs": [{"name": "wool", "datatype": "BYTES", "shape": [-1]},
                                 {"name": "tension", "datatype": "BYTES", "shape": [-1]}],
                      "outputs": [{"name": "breaks", "datatype": "FP64", "shape": [-1]}]},
        "r": {"packages": ["randomForest"],
              "columns": [{"name": "wool", "type": "factor", "levels": ["A", "B"]},
                          {"name": "tension", "type": "factor", "levels": ["L", "M", "H", "XL"]}]},
    }, sort_keys=False))
    address = f"127.0.0.1:{free_port()}"
    process = RunningProcess(meshserve_argv("adapter", str(folder), "--listen", address))
    process.wait_for_line(r"meshserve adapter ready", 120)
    process.address = address
    yield process, folder / "model.rds"
    process.stop()


def request(wool: list[str], tension: list[str]) -> list[grpcclient.InferInput]:
    inputs = []
    for name, values in (("wool", wool), ("tension", tension)):
        array = np.array([v.encode() for v in values], dtype=object)
        tensor = grpcclient.InferInput(name, [len(values)], "BYTES")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def test_every_warpbreaks_row_gets_what_rscript_gives_despite_a_declared_unseen_level(forest_adapter):
    process, model_file = forest_adapter
    assert "declares level(s) 'XL' that the model never saw" in process.output
    rows = r_dataset("warpbreaks", ["wool", "tension"])
    client = grpcclient.InferenceServerClient(process.address)
    got = client.infer("breaks", request([r["wool"] for r in rows], [r["tension"] for r in rows])).as_numpy("breaks")
    want = rscript_predictions(model_file, "warpbreaks", ["randomForest"])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


def test_a_request_using_the_unseen_level_is_invalid_argument_naming_what_the_model_knows(forest_adapter):
    process, _ = forest_adapter
    client = grpcclient.InferenceServerClient(process.address)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("breaks", request(["A", "B"], ["M", "XL"]))
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert caught.value.message() == ("input 'tension': column 'tension' row 1: level 'XL' is declared in model.yaml "
                                      "but the model never saw it at training; the model knows L, M, H")
    assert client.infer("breaks", request(["A"], ["H"])).as_numpy("breaks").shape == (1,)

"""`meshserve baseline`: training data in CSV or Parquet becomes the package's baseline, outputs
scored by the model itself; a missing column is a one-line error; a bad drift setting or baseline
file stops the mesh before it starts."""

import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import EXAMPLES, meshserve_argv
from meshserve.spec.deployment_spec import parse_spec
from meshserve.sidecars.drift.baseline import read_baseline
from meshserve.sidecars.drift.plan import plan_for
from sklearn.datasets import load_iris

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import load_package

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture
def iris_package(tmp_path):
    """A copy of the iris example without its baseline."""
    package = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris_species", package, ignore=shutil.ignore_patterns("baseline.json", "__pycache__"))
    manifest = package / "model.yaml"
    manifest.write_text("".join(line for line in manifest.read_text().splitlines(keepends=True)
                                if not line.startswith("baseline:")))
    return package


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_baseline_from_training_data_names_every_column_and_the_models_answers(iris_package, tmp_path, suffix):
    data = load_iris()
    table = pa.table({name: data.data[:, j] for j, name in enumerate(FEATURES)} | {"note": ["x"] * 150})
    path = tmp_path / f"train{suffix}"
    if suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    result = subprocess.run(meshserve_argv("baseline", str(iris_package), "--data", str(path)),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "150 rows, 4 input and 2 output columns" in result.stdout
    assert yaml.safe_load((iris_package / "model.yaml").read_text())["baseline"] == "baseline.json"
    baseline = read_baseline(iris_package / "baseline.json")
    assert [f.column for f in baseline.features] == FEATURES + ["species", "distance"]
    species = baseline.feature("species", "species")
    assert species.kind == "categorical" and set(species.categories) == {"setosa", "versicolor", "virginica"}
    petal = baseline.feature("measurements", "petal length (cm)")
    assert petal.kind == "numeric" and petal.count == 150 and petal.missing_rate == 0
    assert sum(petal.frequencies) == pytest.approx(1.0) and len(petal.quantiles) == 101
    load_package(iris_package)  # still a valid package, now with its baseline
    again = subprocess.run(meshserve_argv("baseline", str(iris_package), "--data", str(path)),
                           capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0
    assert (iris_package / "model.yaml").read_text().count("baseline:") == 1


def test_a_missing_column_is_a_one_line_error_naming_it(iris_package, tmp_path):
    data = load_iris()
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({name: data.data[:, j] for j, name in enumerate(FEATURES[:3])}), path)
    result = subprocess.run(meshserve_argv("baseline", str(iris_package), "--data", str(path)),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0] and "no column 'petal width (cm)'" in lines[0] and "Fix: add a column" in lines[0]


def test_a_manifest_naming_a_baseline_that_is_not_there_is_refused(iris_package):
    (iris_package / "model.yaml").write_text((iris_package / "model.yaml").read_text() + "baseline: gone.json\n")
    with pytest.raises(ManifestError) as caught:
        load_package(iris_package)
    assert caught.value.field == "baseline" and "meshserve baseline" in caught.value.fix


def test_a_broken_baseline_file_stops_the_plan(iris_package):
    (iris_package / "baseline.json").write_text('{"features": [{"role": "input"}]}')
    (iris_package / "model.yaml").write_text((iris_package / "model.yaml").read_text() + "baseline: baseline.json\n")
    with pytest.raises(ManifestError) as caught:
        plan_for([load_package(iris_package)], {})
    assert "baseline.json" in caught.value.path and "meshserve baseline" in caught.value.fix


def test_a_baseline_of_other_columns_than_the_signature_is_refused_by_meshserve_check(iris_package, tmp_path):
    text = (EXAMPLES / "iris_species" / "baseline.json").read_text().replace('"petal width (cm)"', '"petal girth"')
    (iris_package / "baseline.json").write_text(text)
    (iris_package / "model.yaml").write_text((iris_package / "model.yaml").read_text() + "baseline: baseline.json\n")
    result = subprocess.run(meshserve_argv("check", str(iris_package)), capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 2
    assert "column 'petal girth' of 'measurements' is not in the package's signature" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_drift_settings_in_the_spec_are_checked_and_reach_the_plan():
    spec = parse_spec({"models": {"iris-species": {"variants": [{"version": "1", "weight": 1}],
                                                   "drift": {"psi_threshold": 0.3, "window_rows": 500}}}}, "m.yaml")
    plans = plan_for([load_package(EXAMPLES / "iris_species")],
                     {m: d.drift.model_dump() for m, d in spec.models.items()})
    assert plans[0].policy.psi_threshold == 0.3 and plans[0].policy.window_rows == 500
    assert plans[0].policy.min_samples == 200  # the default
    with pytest.raises(ManifestError) as caught:
        parse_spec({"models": {"iris-species": {"variants": [{"version": "1", "weight": 1}],
                                                "drift": {"psi_treshold": 0.3}}}}, "m.yaml")
    assert caught.value.field == "models.iris-species.drift.psi_treshold"
    assert not plan_for([load_package(EXAMPLES / "iris_species")], {"iris-species": {"enabled": False}})


REGIONS_MANIFEST = """\
name: regions
version: "1"
runtime: python
entrypoint: model:predict
signature:
  inputs:
    - {name: region, datatype: BYTES, shape: [-1, 1], limits: {region: {categories: [north, south]}}}
    - {name: income, datatype: FP64, shape: [-1, 1], features: [salary], limits: {salary: {range: [0, 1000000]}}}
  outputs:
    - {name: score, datatype: FP64, shape: [-1]}
"""


def test_a_single_column_input_is_one_name_in_its_limits_its_baseline_and_live_drift(tmp_path):
    from meshserve.sidecars.drift.baseline import write_baseline
    from meshserve.sidecars.drift.live_data import Window
    from meshserve.sidecars.drift.package_baseline import make_baseline

    (tmp_path / "model.yaml").write_text(REGIONS_MANIFEST)
    (tmp_path / "model.py").write_text("def predict(region, income):\n    return {'score': income[:, 0]}\n")
    package = load_package(tmp_path)
    table = {"region": ["north", "south", "north"], "salary": [30000.0, 52000.0, 41000.0], "score": [0.1, 0.5, 0.2]}
    baseline, path = make_baseline(package, table, score_outputs=False)
    for spec in package.manifest.signature.inputs:
        assert [f.column for f in baseline.features if f.tensor == spec.name] == list(spec.limits)
    write_baseline(baseline, path)
    plan_for([load_package(tmp_path)], {})  # the plan takes the baseline's names as the signature's

    window = Window("rows", 10)
    window.add(1.0, {"inputs": {"region": {"shape": [2, 1], "values": [["south"], ["north"]]},
                                "income": {"shape": [2, 1], "features": ["salary"], "values": [[1.0], [2.0]]}}},
               {("input", "region"), ("input", "income")}, None)
    assert list(window.column("input", "region", "region")) == ["south", "north"]
    assert list(window.column("input", "income", "salary")) == [1.0, 2.0]


def test_a_baseline_made_before_single_columns_were_named_after_their_input_still_loads(tmp_path):
    from meshserve.sidecars.drift.baseline import compute_baseline, write_baseline

    (tmp_path / "model.yaml").write_text(REGIONS_MANIFEST + "baseline: baseline.json\n")
    (tmp_path / "model.py").write_text("def predict(region, income):\n    return {'score': income[:, 0]}\n")
    old = compute_baseline([("input", "region", "region_0", "BYTES", ["north", "south"])])
    write_baseline(old, tmp_path / "baseline.json")
    assert plan_for([load_package(tmp_path)], {})[0].baselines["1"].endswith("baseline.json")

"""A malformed model.yaml is refused before anything starts, naming the file, the field and the fix."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, meshserve_argv
from meshserve.core.errors import ManifestError
from meshserve.core.model_package import discover_packages, load_package


@pytest.fixture
def package(tmp_path) -> Path:
    target = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris_species", target)
    return target


def edit(package: Path, change) -> None:
    manifest = yaml.safe_load((package / "model.yaml").read_text())
    change(manifest)
    (package / "model.yaml").write_text(yaml.safe_dump(manifest))


def test_the_bundled_examples_load():
    names = {p.name for p in discover_packages(EXAMPLES)}
    assert {"breast-cancer", "iris-species"} <= names


@pytest.mark.parametrize("change, field, words", [
    (lambda m: m.pop("name"), "name", "Field required"),
    (lambda m: m.update(runtime="julia"), "runtime", "'python'"),
    (lambda m: m["signature"]["inputs"][0].update(datatype="FLOAT"), "signature.inputs[0].datatype", "BOOL"),
    (lambda m: m["signature"]["inputs"][0].update(shape=[-1, 0]), "signature.inputs[0].shape", "positive size or -1"),
    (lambda m: m["signature"]["inputs"][0].update(features=["a", "b"]), "signature.inputs[0]", "2 feature names"),
    (lambda m: m["signature"]["outputs"].append(m["signature"]["outputs"][0]), "signature", "repeated: species"),
    (lambda m: m.update(colour="blue"), "colour", "Extra inputs"),
    (lambda m: m.update(entrypoint="missing.joblib"), "entrypoint", "does not exist"),
    (lambda m: m.update(entrypoint="nonsense"), "entrypoint", "neither a joblib or skops file, an .onnx file, an MLflow model folder nor module:function"),
], ids=["missing-name", "unknown-runtime", "bad-datatype", "zero-dimension", "features-vs-shape",
        "duplicate-output", "unknown-field", "missing-model-file", "bad-entrypoint"])
def test_malformed_manifest_names_file_field_and_fix(package, change, field, words):
    edit(package, change)
    with pytest.raises(ManifestError) as caught:
        load_package(package)
    message = str(caught.value)
    assert str(package / "model.yaml") in message
    assert f"field '{field}'" in message
    assert words in message
    assert "Fix:" in message


def test_not_yaml_is_refused(package):
    (package / "model.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_package(package)


def test_two_packages_with_the_same_name_and_version_are_refused(tmp_path):
    for copy in ("a", "b"):
        shutil.copytree(EXAMPLES / "iris_species", tmp_path / copy)
    with pytest.raises(ManifestError, match="also in"):
        discover_packages(tmp_path)


def test_meshserve_up_refuses_a_bad_package_before_starting_anything(package):
    edit(package, lambda m: m.update(runtime="julia"))
    result = subprocess.run(meshserve_argv("up", str(package.parent), "--listen", "127.0.0.1:0"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "model.yaml: field 'runtime'" in result.stderr
    assert "adapter ready" not in result.stdout

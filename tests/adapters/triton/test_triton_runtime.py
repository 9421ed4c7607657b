"""The Triton runtime against a real tritonserver (from the nvidia-pytriton wheel, on the CPU).

Stories: a team's Triton model goes live only when Triton loads it and its metadata matches
model.yaml; every refusal names the file or tensor and carries Triton's own words; requests
carry the caller's deadline; a Triton the team already runs can be used instead of our own.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml

from meshserve.adapters.runtime import request_deadline
from meshserve.adapters.triton.runtime import TritonRuntime, mesh_error
from meshserve.core.errors import InvalidInput, ManifestError, ModelUnavailable
from meshserve.core.model_package import load_package

from conftest import ROOT  # noqa: E402
EXAMPLE = ROOT / "examples" / "triton_digits"
MODEL = "digits_mlp"

from meshserve.adapters.triton.triton_env import not_installed_message, triton_environment  # noqa: E402
if triton_environment() is None:
    pytest.skip(not_installed_message(), allow_module_level=True)


@pytest.fixture(scope="module")
def digits_package() -> Path:
    """The example package with its weights trained (set-up trains them; a fresh checkout may not have)."""
    if not (EXAMPLE / "model_repository" / MODEL / "1" / "weights.npz").exists():
        subprocess.run([sys.executable, str(EXAMPLE / "train.py")], check=True, capture_output=True)
    return EXAMPLE


@pytest.fixture
def package_copy(tmp_path, digits_package):
    """A writable copy of the example package, with `edit(manifest_changes)` to change model.yaml."""
    target = tmp_path / "package"
    shutil.copytree(digits_package, target)

    class Copy:
        path = target
        repository_model = target / "model_repository" / MODEL

        def edit_manifest(self, change) -> None:
            manifest = yaml.safe_load((target / "model.yaml").read_text())
            change(manifest)
            (target / "model.yaml").write_text(yaml.safe_dump(manifest))

    return Copy()


class RunningLoop:
    """One event loop for a module, so a runtime loaded once serves many tests."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine, timeout: float = 120):
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, timeout))


@pytest.fixture(scope="module")
def loop():
    running = RunningLoop()
    yield running
    running.loop.close()


@pytest.fixture(scope="module")
def digits_runtime(loop, digits_package):
    """The example model live on meshserve's own Triton."""
    runtime = TritonRuntime()
    loop.run(runtime.load(load_package(digits_package)))
    yield runtime
    loop.run(runtime.close())


def load_refusal(loop, package_dir: Path) -> str:
    """Load a package that must be refused; return the message (and check nothing is left running)."""
    runtime = TritonRuntime()
    with pytest.raises(ManifestError) as refused:
        loop.run(runtime.load(load_package(package_dir)))
    assert runtime.server is None or runtime.server.process.returncode is not None, "Triton left running"
    return str(refused.value)


def random_digits(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 16, size=(rows, 64)).astype(np.float32)


def test_importing_the_triton_runtime_starts_nothing_and_loads_no_tritonclient():
    code = ("import sys, meshserve.adapters.triton.runtime, meshserve.adapters.triton.server;"
            "print(sorted(m for m in sys.modules if m.startswith(('tritonclient', 'pytriton'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_package_must_name_either_its_own_repository_or_an_external_server(package_copy):
    package_copy.edit_manifest(lambda m: m["triton"].update(server="127.0.0.1:8001"))
    with pytest.raises(ManifestError, match="exactly one of `model_repository`"):
        load_package(package_copy.path)


def test_a_bad_config_pbtxt_is_refused_with_its_path_and_line_before_triton_starts(package_copy):
    config = package_copy.repository_model / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 64", "max_batch_size: sixty-four"))
    with pytest.raises(ManifestError) as refused:
        load_package(package_copy.path)
    message = str(refused.value)
    assert str(config) in message and "sixty-four" in message and "integer" in message


def test_a_model_that_fails_to_load_is_refused_with_tritons_message_and_the_path(loop, package_copy):
    (package_copy.repository_model / "1" / "weights.npz").unlink()
    message = load_refusal(loop, package_copy.path)
    assert "Triton could not load model 'digits_mlp'" in message
    assert "weights.npz is missing" in message  # the model's own error, as Triton reported it
    assert str(package_copy.repository_model) in message
    assert "Full log:" in message


def test_a_config_that_triton_rejects_is_refused_with_tritons_own_words(loop, package_copy):
    config = package_copy.repository_model / "config.pbtxt"
    config.write_text(config.read_text().replace('backend: "python"', 'backend: "no_such_backend"'))
    message = load_refusal(loop, package_copy.path)
    assert "no_such_backend" in message and str(package_copy.repository_model) in message


def test_a_signature_that_disagrees_with_tritons_metadata_refuses_to_go_live_naming_the_input(loop, package_copy):
    package_copy.edit_manifest(lambda m: m["signature"]["inputs"][0].update(datatype="FP64"))
    message = load_refusal(loop, package_copy.path)
    assert "signature.inputs.pixels" in message
    assert "'pixels' is FP64 in model.yaml but FP32 in Triton" in message


def test_an_output_missing_from_triton_refuses_to_go_live_naming_it(loop, package_copy):
    package_copy.edit_manifest(lambda m: m["signature"]["outputs"].append(
        {"name": "confidence", "datatype": "FP32", "shape": [-1, 1]}))
    message = load_refusal(loop, package_copy.path)
    assert "Triton's model has no output 'confidence'" in message


def test_predictions_come_back_with_every_declared_output(loop, digits_runtime):
    outputs = loop.run(digits_runtime.predict({"pixels": random_digits(5)}))
    assert outputs["probabilities"].shape == (5, 10) and outputs["probabilities"].dtype == np.float32
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    assert outputs["digit"].shape == (5, 1) and outputs["digit"].dtype == np.int64
    np.testing.assert_array_equal(outputs["digit"][:, 0], outputs["probabilities"].argmax(axis=1))
    assert loop.run(digits_runtime.ready())


def test_the_callers_deadline_travels_to_triton(loop, digits_runtime):
    async def predict_with_deadline(seconds: float):
        request_deadline.set(time.monotonic() + seconds)
        return await digits_runtime.predict({"pixels": random_digits(1)})

    with pytest.raises(Exception) as late:
        loop.run(predict_with_deadline(0.000001))
    assert late.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "Triton (digits_mlp)" in late.value.message
    assert loop.run(predict_with_deadline(30.0))["digit"].shape == (1, 1)


def test_triton_errors_become_the_matching_grpc_status_with_tritons_message():
    from tritonclient.utils import InferenceServerException

    def triton(status: str, message: str):
        return mesh_error(InferenceServerException(message, status=status), "digits_mlp")

    shape = triton("StatusCode.INVALID_ARGUMENT", "unexpected shape for input 'pixels' for model 'digits_mlp'")
    assert isinstance(shape, InvalidInput) and shape.input_name == "pixels"
    assert shape.code == grpc.StatusCode.INVALID_ARGUMENT and "unexpected shape" in shape.message
    assert isinstance(triton("StatusCode.UNAVAILABLE", "Socket closed"), ModelUnavailable)
    assert triton("StatusCode.NOT_FOUND", "Request for unknown model").code == grpc.StatusCode.UNAVAILABLE
    assert triton("StatusCode.RESOURCE_EXHAUSTED", "queue full").code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert triton("StatusCode.INTERNAL", "model raised").code == grpc.StatusCode.INTERNAL


def test_a_triton_the_team_already_runs_serves_the_same_answers(loop, digits_runtime, package_copy):
    # Our own Triton stands in for the team's: the package points at it by address.
    address = digits_runtime.server.address
    package_copy.edit_manifest(lambda m: m.update(triton={"server": address, "model_name": MODEL}))
    external = TritonRuntime()
    loop.run(external.load(load_package(package_copy.path)))
    try:
        assert external.server is None
        inputs = {"pixels": random_digits(16, seed=3)}
        ours, theirs = loop.run(digits_runtime.predict(inputs)), loop.run(external.predict(inputs))
        np.testing.assert_array_equal(ours["digit"], theirs["digit"])
        np.testing.assert_allclose(ours["probabilities"], theirs["probabilities"], rtol=1e-6)
    finally:
        loop.run(external.close())
    assert loop.run(digits_runtime.ready()), "closing a runtime for an external Triton must not stop that Triton"


def test_an_external_triton_that_does_not_answer_is_refused_naming_the_address(loop, package_copy):
    package_copy.edit_manifest(lambda m: m.update(triton={"server": "127.0.0.1:9", "model_name": MODEL}))
    message = load_refusal(loop, package_copy.path)
    assert "triton.server" in message and "127.0.0.1:9" in message


def test_an_input_triton_requires_but_model_yaml_omits_is_a_mismatch_unless_optional():
    from meshserve.adapters.triton.runtime import signature_problems
    from meshserve.core.model_package import Signature

    signature = Signature.model_validate({
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "digit", "datatype": "INT64", "shape": [-1, 1]}]})
    metadata = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": ["-1", "64"]},
                           {"name": "temperature", "datatype": "FP32", "shape": ["-1", "1"]}],
                "outputs": [{"name": "digit", "datatype": "INT64", "shape": ["-1", "1"]}]}
    problems = signature_problems(signature, metadata)
    assert problems == [("signature.inputs", "Triton's model requires input 'temperature' that model.yaml "
                                             "does not declare (FP32 [-1, 1])")]
    assert signature_problems(signature, metadata, optional_inputs=frozenset({"temperature"})) == []


def test_a_fixed_dimension_in_model_yaml_may_narrow_a_variable_one_in_triton_but_not_widen_it():
    from meshserve.adapters.triton.runtime import signature_problems
    from meshserve.core.model_package import Signature

    def problems(ours, theirs):
        signature = Signature.model_validate({
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": ours}],
            "outputs": [{"name": "digit", "datatype": "INT64", "shape": [-1, 1]}]})
        return signature_problems(signature, {
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": theirs}],
            "outputs": [{"name": "digit", "datatype": "INT64", "shape": [-1, 1]}]})

    assert problems([-1, 64], [-1, -1]) == []
    assert problems([-1, -1], [-1, 64])[0][0] == "signature.inputs.pixels"
    assert problems([-1, 64], [-1, 64, 1])[0][0] == "signature.inputs.pixels"


# --- `meshserve package`: the recorded Triton environment and the digest check at load ---------------

def package_it(directory: Path, *flags: str) -> str:
    """Run the real `meshserve package DIR` command; return what it printed."""
    done = subprocess.run([sys.executable, "-m", "meshserve.cli", "package", str(directory), *flags],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_meshserve_package_records_the_wheel_and_a_digest_of_every_model_file(package_copy):
    from meshserve.adapters.triton.triton_env import wheel_version

    (package_copy.repository_model / "1" / "__pycache__").mkdir(exist_ok=True)
    (package_copy.repository_model / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"cache")
    printed = package_it(package_copy.path)
    assert f"Triton from nvidia-pytriton {wheel_version()}: model digits_mlp " \
           "with 3 file digests" in printed
    manifest = yaml.safe_load((package_copy.path / "model.yaml").read_text())
    recorded = manifest["environment"]["triton"]
    model = package_copy.repository_model
    assert recorded["files"] == {"config.pbtxt": sha256(model / "config.pbtxt"),
                                 "1/model.py": sha256(model / "1" / "model.py"),
                                 "1/weights.npz": sha256(model / "1" / "weights.npz")}  # byte-code caches left out
    assert recorded["wheel"] == {"name": "nvidia-pytriton", "version": wheel_version()}
    assert recorded["model_name"] == MODEL and recorded["source"] == "model_repository"
    assert manifest["environment"]["strict"] is False
    assert manifest["triton"] == {"model_repository": "model_repository", "model_name": MODEL}  # the rest is kept


def test_an_external_triton_is_recorded_by_address_and_model_without_digests(package_copy):
    from meshserve.adapters.triton.environment import capture_environment
    from meshserve.cli.commands.package import summary

    package_copy.edit_manifest(lambda m: m.update(triton={"server": "127.0.0.1:9", "model_name": MODEL,
                                                          "model_version": "1"}))
    recorded = capture_environment(load_package(package_copy.path))
    assert recorded == {"triton": {"source": "server", "server": "127.0.0.1:9", "version": "unknown",
                                   "model_name": MODEL, "model_version": "1"}}
    assert summary(recorded) == ["Triton unknown at 127.0.0.1:9: model digits_mlp version 1"]


def test_a_model_file_changed_after_packaging_is_warned_about_at_load_naming_it_and_both_digests(
        loop, package_copy, caplog):
    package_it(package_copy.path)
    model_py = package_copy.repository_model / "1" / "model.py"
    before = sha256(model_py)
    model_py.write_text(model_py.read_text() + "\n# edited after packaging\n")
    runtime = TritonRuntime()
    with caplog.at_level("WARNING", logger="meshserve.triton"):
        loop.run(runtime.load(load_package(package_copy.path)))
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(str(model_py) in w and before in w and sha256(model_py) in w for w in warnings), warnings
        assert loop.run(runtime.ready()), "a warning must not stop the model from serving"
    finally:
        loop.run(runtime.close())


def test_a_model_file_changed_after_strict_packaging_is_refused_naming_file_field_and_fix(loop, package_copy):
    package_it(package_copy.path, "--strict")
    model_py = package_copy.repository_model / "1" / "model.py"
    before = sha256(model_py)
    model_py.write_text(model_py.read_text() + "\n# edited after packaging\n")
    message = load_refusal(loop, package_copy.path)
    assert "field 'environment.triton.files.1/model.py'" in message
    assert str(model_py) in message and before in message and sha256(model_py) in message
    assert "re-run `meshserve package`" in message

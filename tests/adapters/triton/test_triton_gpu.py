"""The same Triton package on whatever the machine has: KIND_GPU instances on a GPU, the CPU otherwise.

The example's config.pbtxt asks for KIND_AUTO; Triton turns it into KIND_GPU where it finds a GPU
and KIND_CPU where it does not. The GPU story is skipped, with the reason printed, on machines
without an NVIDIA GPU (CI has none); the CPU story runs everywhere.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from meshserve.adapters.triton.runtime import TritonRuntime
from meshserve.core.model_package import load_package

from conftest import ROOT  # noqa: E402
EXAMPLE = ROOT / "examples" / "triton_digits"
WEIGHTS = EXAMPLE / "model_repository" / "digits_mlp" / "1" / "weights.npz"

from meshserve.adapters.triton.triton_env import not_installed_message, triton_environment  # noqa: E402
if triton_environment() is None:
    pytest.skip(not_installed_message(), allow_module_level=True)


def nvidia_gpu_absence() -> str | None:
    """Why this machine cannot run KIND_GPU instances, or None when it can."""
    if not any(Path(f"/dev/nvidia{i}").exists() for i in range(8)):
        return "no NVIDIA GPU on this machine (no /dev/nvidia*): the KIND_GPU story runs only on a GPU machine"
    if shutil.which("nvidia-smi") is None:
        return "an NVIDIA device node exists but nvidia-smi is missing: no usable driver"
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    if probe.returncode != 0 or "GPU" not in probe.stdout:
        return f"nvidia-smi finds no GPU: {probe.stdout.strip() or probe.stderr.strip()}"
    return None


def reference_probabilities(pixels: np.ndarray) -> np.ndarray:
    """The MLP's forward pass in plain NumPy, straight from the trained weights."""
    saved = np.load(WEIGHTS)
    h = pixels / 16.0
    layers = sum(1 for k in saved.files if k.startswith("w"))
    for i in range(layers):
        h = h @ saved[f"w{i}"] + saved[f"b{i}"]
        if i < layers - 1:
            h = np.maximum(h, 0)
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def serve_and_describe(pixels: np.ndarray) -> tuple[list[str], dict[str, np.ndarray]]:
    """Load the example on meshserve's own Triton; return its instance kinds and a prediction."""
    if not WEIGHTS.exists():
        subprocess.run([sys.executable, str(EXAMPLE / "train.py")], check=True, capture_output=True)

    async def run():
        runtime = TritonRuntime()
        await runtime.load(load_package(EXAMPLE))
        try:
            config = await runtime.client.get_model_config("digits_mlp", as_json=True)
            kinds = [group["kind"] for group in config["config"]["instance_group"]]
            return kinds, await runtime.predict({"pixels": pixels})
        finally:
            await runtime.close()

    return asyncio.run(run())


def test_on_a_machine_without_gpu_the_package_runs_on_cpu_instances():
    if nvidia_gpu_absence() is None:
        pytest.skip("this machine has an NVIDIA GPU; the CPU story is for machines without one")
    pixels = np.random.default_rng(4).uniform(0, 16, size=(8, 64)).astype(np.float32)
    kinds, outputs = serve_and_describe(pixels)
    assert kinds == ["KIND_CPU"]
    np.testing.assert_allclose(outputs["probabilities"], reference_probabilities(pixels), rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_on_a_gpu_machine_the_same_package_runs_on_kind_gpu_instances():
    reason = nvidia_gpu_absence()
    if reason is not None:
        pytest.skip(reason)  # the reason is printed in pytest's summary (-ra)
    pixels = np.random.default_rng(5).uniform(0, 16, size=(8, 64)).astype(np.float32)
    kinds, outputs = serve_and_describe(pixels)
    assert kinds and all(kind == "KIND_GPU" for kind in kinds), kinds
    np.testing.assert_allclose(outputs["probabilities"], reference_probabilities(pixels), rtol=1e-4, atol=1e-6)

"""Cold start per runtime: the first request to a variant scaled to zero (`replicas: {min: 0}`)
waits while `meshserve up` starts a replica; how long, for a Python, an R and a Java model,
against the same request once the replica runs, and against starting the adapter alone
(`meshserve adapter PACKAGE` until its ready line, the part no mesh can save), in one run.

    .venv/bin/python bench/bench_cold_start.py [--repeats 2]

Each runtime gets a mesh of its own with one example package. A repeat waits until the
variant is back at zero (cool-down 2 s), then times the next first request again.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import yaml
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import RunningProcess, free_port, meshserve_argv, start_mesh  # noqa: E402

from meshserve.adapters.tensor_codec import encode_tensor  # noqa: E402
from meshserve.envoy.admin import EnvoyAdmin  # noqa: E402

EXAMPLES = {  # runtime -> (example package folder, its inputs for one row)
    "python": ("breast_cancer", {"features": np.full((1, 30), 1.0)}),
    "r": ("r_infert_glm", {"education": np.array([b"6-11yrs"], dtype=object), "age": np.array([30.0]),
                           "parity": np.array([2], dtype=np.int32), "history": np.array([[0.0, 1.0]])}),
    "java": ("java_loan_default", {"applicant": np.array([[50.0, 0.3, 40.0, 1.0]])}),
}


def request_for(model: str, inputs: dict[str, np.ndarray], manifest: dict) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=model)
    for spec in manifest["signature"]["inputs"]:
        tensor = message.inputs.add(name=spec["name"])
        raw = encode_tensor(inputs[spec["name"]], spec["datatype"], tensor, raw=True)
        message.raw_input_contents.append(raw)
    return message


async def timed(address: str, message: pb.ModelInferRequest) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        started = time.monotonic()
        await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(message, timeout=180)
        return time.monotonic() - started


def wait_for_zero(admin: EnvoyAdmin, cluster: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while admin.hosts(cluster):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{cluster} did not scale back to zero")
        time.sleep(0.2)


def adapter_start(package: Path) -> float:
    """Seconds from spawning `meshserve adapter PACKAGE` to its ready line."""
    started = time.monotonic()
    process = RunningProcess(meshserve_argv("adapter", str(package), "--listen", f"127.0.0.1:{free_port()}"))
    try:
        process.wait_for_line(r"meshserve adapter ready", 180)
        return time.monotonic() - started
    finally:
        process.stop()


def measure(runtime: str, repeats: int) -> tuple[list[float], float]:
    folder, inputs = EXAMPLES[runtime]
    manifest = yaml.safe_load((ROOT / "examples" / folder / "model.yaml").read_text())
    model, version = manifest["name"], str(manifest["version"])
    models = Path(tempfile.mkdtemp(prefix=f"bench-cold-{runtime}-"))
    try:
        (models / folder).symlink_to(ROOT / "examples" / folder, target_is_directory=True)
        (models / "meshserve.yaml").write_text(yaml.safe_dump({
            "models": {model: {"variants": [{"version": version, "weight": 1, "replicas": {"min": 0, "max": 1}}],
                               "autoscaling": {"cooldown_s": 2}}},
            "records": {"enabled": False}}))
        mesh = start_mesh(models, env={"MESHSERVE_AUTOSCALE_INTERVAL_S": "0.5"})
        try:
            admin = EnvoyAdmin(mesh.wait_for_line(r"admin http://(\S+),", 1).group(1))
            message = request_for(model, inputs, manifest)
            cold, warm = [], []
            for _ in range(repeats):
                wait_for_zero(admin, f"variant|{model}|{version}")
                cold.append(asyncio.run(timed(mesh.address, message)))
                warm.extend(asyncio.run(timed(mesh.address, message)) for _ in range(5))
            return cold, statistics.median(warm)
        finally:
            mesh.stop()
    finally:
        shutil.rmtree(models, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runtimes", default="python,r,java")
    args = parser.parse_args()
    print("| runtime | first request (cold start), s | adapter start alone, s | cold / adapter start "
          "| warm request (median), ms |")
    print("|---|---|---|---|---|")
    for runtime in args.runtimes.split(","):
        alone = statistics.median(adapter_start(ROOT / "examples" / EXAMPLES[runtime][0]) for _ in range(args.repeats))
        cold, warm = measure(runtime, args.repeats)
        print(f"| {runtime} | {', '.join(f'{c:.2f}' for c in cold)} | {alone:.2f} | "
              f"{statistics.median(cold) / alone:.2f} | {warm * 1000:.1f} |", flush=True)


if __name__ == "__main__":
    main()

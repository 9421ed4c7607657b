"""The containers' commands in the rendered pods start the real processes.

Each container runs here as Kubernetes would run it: its args with `$(VAR)` expanded from its
env, Secrets and the downward API filled in, only the pod-local paths and the listen port
moved to this machine. The adapter answers health and an inference, the router starts on the
rendered models table, and the recorder moves the adapter's record into the store.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import PurePosixPath

import numpy as np
import pytest
import tritonclient.grpc as tc
import yaml
from conftest import free_port
from models.variant_packages import write_variant_packages

from meshserve.core.mesh_protocol import ADAPTER_READY, ROUTER_READY
from meshserve.kubernetes.models_table import TABLE_DIR
from meshserve.kubernetes.options import ClusterOptions
from meshserve.kubernetes.packages import read_packages
from meshserve.kubernetes.records import RECORDS_DIR
from meshserve.kubernetes.render import render_cluster
from meshserve.spec.deployment_spec import parse_spec, resolve_spec
from meshserve.sidecars.records.recorder import READY_LINE as RECORDER_READY
from meshserve.sidecars.records.store import open_store


def expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def container_env(container: dict, secrets: dict[str, dict[str, str]], pod: str) -> dict[str, str]:
    env = {}
    for item in container.get("env", []):
        source = item.get("valueFrom")
        if source is None:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["key"] in secrets.get(ref["name"], {}):
                env[item["name"]] = secrets[ref["name"]][ref["key"]]
            elif not ref.get("optional"):
                raise AssertionError(f"missing secret {ref}")
        else:
            env[item["name"]] = {"metadata.name": pod, "metadata.namespace": "meshserve"}[source["fieldRef"]["fieldPath"]]
    return env


def start(container: dict, secrets: dict, moved: dict[str, str], marker: str, procs: list) -> subprocess.Popen:
    env = container_env(container, secrets, pod="iris-pod-1")
    args = [expand(a, env) for a in container["args"]]
    for old, new in moved.items():
        args = [a.replace(old, new) for a in args]
        env = {k: v.replace(old, new) for k, v in env.items()}
    assert args[0] == "python"
    proc = subprocess.Popen([sys.executable, *args[1:]], env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    procs.append(proc)
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return proc
    raise AssertionError(f"{container['name']} did not start: {''.join(seen)[-2000:]}")


@pytest.mark.slow
def test_the_rendered_adapter_router_and_recorder_commands_run(tmp_path):
    models = write_variant_packages(tmp_path / "models", "iris", ["1"])
    store = f"sqlite:///{tmp_path / 'records.db'}"
    packages = read_packages(models, PurePosixPath(models))
    spec = resolve_spec(parse_spec({"models": {}, "records": {"store": "postgresql://unused/db"}}, "meshserve.yaml"),
                        {"iris": {"1"}})
    manifests = render_cluster(spec, packages, ClusterOptions())
    objects = {(o["kind"], o["metadata"]["name"]): o for o in manifests.objects()}
    adapter_pod = objects[("Deployment", "meshserve-iris-v1")]["spec"]["template"]["spec"]
    router_pod = objects[("Deployment", "meshserve-router")]["spec"]["template"]["spec"]
    table = objects[("ConfigMap", "meshserve-models")]["data"]["models.json"]
    (tmp_path / "router").mkdir()
    (tmp_path / "router" / "models.json").write_text(table)
    secrets = {"meshserve-records": {"store-url": store}}
    port = free_port()
    rest_port = free_port()
    moved = {RECORDS_DIR: str(tmp_path / "spool-dir"), TABLE_DIR: str(tmp_path / "router"),
             "0.0.0.0:8001": f"127.0.0.1:{port}", "0.0.0.0:8000": f"127.0.0.1:{rest_port}"}
    procs: list[subprocess.Popen] = []
    try:
        start(adapter_pod["initContainers"][0], secrets, moved, RECORDER_READY, procs)
        start(adapter_pod["containers"][0], secrets, moved, ADAPTER_READY, procs)
        client = tc.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_model_ready("iris", "1")
        x = tc.InferInput("x", [1, 1], "FP32")
        x.set_data_from_numpy(np.array([[2.5]], dtype=np.float32))
        answer = client.infer("iris", [x], model_version="1", request_id="k8s-1")
        assert answer.as_numpy("y").tolist() == [[2.5]]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "k8s-1" not in {r for r, _ in open_store(store).request_ids()}:
            time.sleep(0.2)
        assert "k8s-1" in {r for r, _ in open_store(store).request_ids()}, "the recorder stored the record"
        for proc in procs:
            proc.terminate()
        procs.clear()
        start(router_pod["containers"][0], secrets, moved, ROUTER_READY, procs)
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v2/health/live", timeout=10) as live:
            assert live.status == 200  # the REST listener Envoy's front forwards HTTP requests to
        assert yaml.safe_load(table)["mesh_address"].startswith("meshserve-envoy-mesh.")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)

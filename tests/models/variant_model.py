"""A test-only model whose behaviour follows its package version, to exercise traffic routing.

Every variant echoes `x` as `y`. Version names starting with `slow` sleep 2 s first,
`busy` 50 ms (a model that takes real time per call, for load tests), `broken` raise. When MESHSERVE_TEST_COUNT_DIR is set, each call appends one line to
`<dir>/<version>.calls`, so a test can count the requests an adapter really served
(O_APPEND writes of one short line are atomic across replicas).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import yaml

VERSION = str(yaml.safe_load((Path(__file__).parent / "model.yaml").read_text())["version"])


def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    count_dir = os.environ.get("MESHSERVE_TEST_COUNT_DIR")
    if count_dir:
        with open(Path(count_dir) / f"{VERSION}.calls", "a") as calls:
            calls.write("1\n")
    if VERSION.startswith("slow"):
        time.sleep(2.0)
    if VERSION.startswith("busy"):
        time.sleep(0.05)
    if VERSION.startswith("broken"):
        raise RuntimeError(f"variant {VERSION} always fails")
    return {"y": inputs["x"].astype(np.float32)}

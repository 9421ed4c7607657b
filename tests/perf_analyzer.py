"""Triton's perf_analyzer as scripts/setup.d/55-perf-analyzer.sh installs it: where it is and how to run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HOME = Path(sys.prefix) / "opt" / "tritonclient-2.41.1"
BINARY = HOME / "bin" / "perf_analyzer"
MISSING = f"perf_analyzer is not installed at {BINARY}: run scripts/setup.d/55-perf-analyzer.sh (or scripts/setup.sh)"
# Windows of 20 requests each (a window of one slow first request would never look stable), any
# spread accepted: the tests check that it runs and measures, not how fast.
QUICK = ["--measurement-mode", "count_windows", "--measurement-request-count", "20",
         "--stability-percentage", "999", "--max-trials", "4"]


def installed() -> bool:
    return BINARY.is_file() and os.access(BINARY, os.X_OK)


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "LD_LIBRARY_PATH": str(HOME / "lib")}
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=timeout, env=env)


def input_data(path: Path, rows: dict[str, dict]) -> Path:
    """perf_analyzer's --input-data JSON with one request: input name -> {content, shape}."""
    path.write_text(json.dumps({"data": [rows]}))
    return path


def throughput(output: str) -> float | None:
    """Inferences per second from perf_analyzer's summary line, None if it printed none."""
    for line in output.splitlines():
        if "throughput:" in line and "infer/sec" in line:
            return float(line.split("throughput:")[1].split("infer/sec")[0])
    return None

"""What the Java tests share: where the Java examples live, their rows, and the oracles that
score the same rows with plain Java in a separate `java` process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEKA_JAR = Path("/usr/share/java/weka.jar")
WEKA_DIR = ROOT / "examples" / "java_weka_j48"
LOAN_DIR = ROOT / "examples" / "java_loan_default"
API_JAR = ROOT / "adapters" / "java" / "build" / "meshserve-model-api.jar"
NEEDED = [WEKA_JAR, WEKA_DIR / "j48.model", WEKA_DIR / "build" / "weka-iris-tools.jar",
          LOAN_DIR / "build" / "loan-default.jar", API_JAR]
NOT_BUILT = "Java examples not built: run scripts/setup.sh (needs JDK 17 and Debian's weka)"


def java_examples_built() -> bool:
    return all(p.exists() for p in NEEDED)


def java_csv(rows: np.ndarray) -> str:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)


def _scored(argv: list[str], rows: np.ndarray) -> np.ndarray:
    out = subprocess.run(argv, input=java_csv(rows), capture_output=True, text=True, check=True, timeout=120).stdout
    return np.array([[float(v) for v in line.split(",")] for line in out.split()])


def iris_rows(seed: int, noise: float, every: int = 1) -> np.ndarray:
    """Every iris flower, plus nudged copies of every EVERY-th that land near the tree's split points."""
    lines = (WEKA_DIR / "data" / "iris.arff").read_text().split("@data", 1)[1].split()
    rows = np.array([[float(v) for v in line.split(",")[:4]] for line in lines])
    rng = np.random.default_rng(seed)
    return np.vstack([rows, rows[::every] + rng.normal(0, noise, rows[::every].shape)])


def weka_oracle(rows: np.ndarray) -> np.ndarray:
    """Three class probabilities then the class index per row, from Weka (train/ScoreJ48.java)."""
    return _scored(["java", "-cp", f"{WEKA_JAR}:{WEKA_DIR / 'build' / 'weka-iris-tools.jar'}", "ScoreJ48",
                    str(WEKA_DIR / "j48.model"), str(WEKA_DIR / "header.model")], rows)


def loan_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(5, 200, n), rng.uniform(0, 1.5, n),
                            rng.integers(18, 90, n), rng.integers(0, 8, n)]).astype(float)


def loan_oracle(rows: np.ndarray) -> np.ndarray:
    """The loan model scored by meshserve's plain-Java ScoreCsv tool."""
    return _scored(["java", "-cp", f"{API_JAR}:{LOAN_DIR / 'build' / 'loan-default.jar'}",
                    "io.meshserve.tools.ScoreCsv", "com.example.credit.LoanDefaultModel", str(LOAN_DIR),
                    "applicant"], rows)

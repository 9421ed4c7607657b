"""The oracle for R models: the same rows scored by plain `Rscript` in its own process
(tests/r_oracle.R), and R's bundled data sets read the same way, for the R tests to compare with."""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from pathlib import Path

ORACLE_SCRIPT = Path(__file__).with_name("r_oracle.R")
ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "examples" / "r_iris_randomforest"
INFERT = ROOT / "examples" / "r_infert_glm"
FAULTY = Path(__file__).with_name("r_faulty_model")
IRIS_FEATURES = ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width"]
INFERT_COLUMNS = ["education", "age", "parity", "induced", "spontaneous"]


def rscript_available() -> bool:
    return shutil.which("Rscript") is not None


def r_dataset(name: str, columns: list[str]) -> list[dict[str, str]]:
    """Rows of one of R's bundled data sets (iris, infert, ...) as text, exactly as R prints them."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "data.csv"
        code = (f"d <- {name}[, c({', '.join(repr(c) for c in columns)})]; "
                "for (c in names(d)) if (is.numeric(d[[c]])) d[[c]] <- sprintf('%.17g', d[[c]]); "
                f"write.csv(d, {str(out)!r}, row.names = FALSE)")
        subprocess.run(["Rscript", "--vanilla", "-e", code], check=True, capture_output=True)
        return _read(out)


def oracle_scores(model_name: str, package_dir: Path, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Score ROWS with the package's model in a fresh Rscript; one dict of result columns per row."""
    with tempfile.TemporaryDirectory() as tmp:
        rows_file, out_file = Path(tmp) / "rows.csv", Path(tmp) / "scores.csv"
        with rows_file.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        subprocess.run(["Rscript", "--vanilla", str(ORACLE_SCRIPT), model_name, str(package_dir),
                        str(rows_file), str(out_file)], check=True, capture_output=True)
        return _read(out_file)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def rscript(code: str) -> None:
    """Run R code in a fresh `Rscript --vanilla`; its error output is the failure message."""
    done = subprocess.run(["Rscript", "--vanilla", "-e", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"Rscript failed: {done.stderr.strip()}")


def rscript_predictions(model_file: Path, newdata: str, packages: list[str] = (), predict: str = "predict(model, newdata)"
                        ) -> list[float]:
    """What plain R predicts: PREDICT evaluated with `model` read from MODEL_FILE and `newdata` the
    R expression NEWDATA (e.g. `warpbreaks`), in a fresh Rscript; numbers round-trip exactly."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "predictions.txt"
        attach = "".join(f"suppressPackageStartupMessages(library({p})); " for p in packages)
        rscript(f"{attach}model <- readRDS({str(model_file)!r}); newdata <- {newdata}; "
                f"writeLines(sprintf('%.17g', as.numeric({predict})), {str(out)!r})")
        return [float(v) for v in out.read_text().split()]

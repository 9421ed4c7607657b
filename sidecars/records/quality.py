"""Live quality: recorded predictions joined to their outcomes, per version and role, over time.

For each output that outcomes report: a class output (BYTES, integer or boolean) gets accuracy,
macro precision and recall and a confusion matrix; with a probability output beside it
(FP, shape [-1, k]) also AUC (one-vs-rest for k > 2) and calibration (Brier score and a
reliability table), each true label matched to the probability column named after it (text
labels, as R classifiers give) or at its position (labels 0..k-1); a numeric output gets MAE
and RMSE. Every figure comes with the number of outcomes it rests on and how late they
arrived. Shadow copies are joined to the outcome of the request they copied, so a shadow is
scored on exactly its primary's requests. Metrics are scikit-learn's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

CLASS_TYPES = {"BYTES", "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def _rows(values: Any) -> list:
    return values if isinstance(values, list) else [values]


def _flat(values: list) -> list:
    return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]


class _Group:
    def __init__(self):
        self.truth: dict[str, list] = defaultdict(list)
        self.predicted: dict[str, list] = defaultdict(list)
        self.probabilities: dict[str, list] = defaultdict(list)
        self.classes: dict[str, list[str]] = {}
        self.kinds: dict[str, str] = {}
        self.lateness: list[float] = []
        self.requests = 0

    def add(self, record: dict[str, Any], outcome: dict[str, Any]) -> None:
        outputs = record.get("outputs") or {}
        used = False
        for name, truth in outcome["values"].items():
            tensor = outputs.get(name)
            if tensor is None or "values" not in tensor:
                continue
            predicted = _flat(_rows(tensor["values"]))
            truth_rows = _flat(_rows(truth))
            if len(truth_rows) != len(predicted):
                continue  # an outcome for a different batch size: not this record's rows
            self.kinds[name] = "class" if tensor["datatype"] in CLASS_TYPES else "numeric"
            self.truth[name] += truth_rows
            self.predicted[name] += predicted
            probability = next((t for n, t in outputs.items() if n != name and t.get("datatype", "").startswith("FP")
                                and len(t.get("shape", [])) == 2 and t["shape"][1] >= 2 and "values" in t), None)
            if self.kinds[name] == "class" and probability is not None:
                self.probabilities[name] += probability["values"]
                if probability.get("features"):
                    self.classes[name] = [str(c) for c in probability["features"]]
            used = True
        if used:
            self.requests += 1
            self.lateness.append(max(0.0, outcome["time"] - record["time"]))

    def figures(self) -> dict[str, Any]:
        from sklearn import metrics  # a second to import: only once there are outcomes to score

        result: dict[str, Any] = {"requests": self.requests, "outputs": {}}
        if self.lateness:
            late = np.asarray(self.lateness)
            result["outcome_delay_s"] = {"median": float(np.median(late)), "p90": float(np.quantile(late, 0.9))}
        for name, kind in self.kinds.items():
            truth, predicted = self.truth[name], self.predicted[name]
            figures: dict[str, Any] = {"kind": kind, "n": len(truth)}
            if kind == "class":
                labels = sorted({str(v) for v in truth} | {str(v) for v in predicted})
                t, p = [str(v) for v in truth], [str(v) for v in predicted]
                precision, recall, _, _ = metrics.precision_recall_fscore_support(t, p, labels=labels, average="macro",
                                                                                  zero_division=0)
                figures.update(accuracy=float(metrics.accuracy_score(t, p)), precision=float(precision),
                               recall=float(recall), labels=labels,
                               confusion=metrics.confusion_matrix(t, p, labels=labels).tolist())
                probabilities = self.probabilities.get(name)
                if probabilities and len(probabilities) == len(truth):
                    figures.update(_probability_figures(truth, np.asarray(probabilities, dtype=float),
                                                        self.classes.get(name)))
            else:
                t, p = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
                figures.update(mae=float(metrics.mean_absolute_error(t, p)),
                               rmse=float(np.sqrt(metrics.mean_squared_error(t, p))))
            result["outputs"][name] = figures
        return result


def _column_index(truth: list, classes: list[str] | None) -> np.ndarray | None:
    """The probability column of each true label: the column named after it when the columns
    carry class names (an R classifier's `setosa`, `versicolor`, ...), else the label as an index."""
    if classes and all(str(v) in classes for v in truth):
        return np.asarray([classes.index(str(v)) for v in truth])
    try:
        return np.asarray([int(v) for v in truth])
    except (TypeError, ValueError):
        return None


def _probability_figures(truth: list, probabilities: np.ndarray, classes: list[str] | None = None) -> dict[str, Any]:
    """AUC and calibration, when each true label names or indexes (0..k-1) a probability column."""
    from sklearn import metrics

    index = _column_index(truth, classes)
    if index is None:
        return {}
    k = probabilities.shape[1]
    if index.min() < 0 or index.max() >= k or len(set(index.tolist())) < 2:
        return {}
    if k == 2:
        auc = metrics.roc_auc_score(index, probabilities[:, 1])
        positive, observed = probabilities[:, 1], (index == 1).astype(float)
    else:
        auc = metrics.roc_auc_score(index, probabilities, multi_class="ovr", labels=list(range(k)))
        positive = probabilities[np.arange(len(index)), probabilities.argmax(axis=1)]
        observed = (probabilities.argmax(axis=1) == index).astype(float)
    bins = np.clip((positive * 10).astype(int), 0, 9)
    reliability = [{"bin": f"{b / 10:.1f}-{(b + 1) / 10:.1f}", "n": int((bins == b).sum()),
                    "predicted": float(positive[bins == b].mean()), "observed": float(observed[bins == b].mean())}
                   for b in range(10) if (bins == b).any()]
    return {"auc": float(auc), "brier": float(np.mean((positive - observed) ** 2)), "reliability": reliability}


def quality(joined: Iterable[tuple[dict, dict]], window_s: float | None = None) -> dict[str, Any]:
    """Figures per (version, role) over the whole span, and per time window when WINDOW_S is set."""
    whole: dict[tuple[str, str], _Group] = defaultdict(_Group)
    windows: dict[tuple[str, str], dict[int, _Group]] = defaultdict(lambda: defaultdict(_Group))
    for record, outcome in joined:
        key = (record["version"], record["role"] or "primary")
        whole[key].add(record, outcome)
        if window_s:
            windows[key][int(record["time"] // window_s)].add(record, outcome)
    groups = []
    for (version, role), group in sorted(whole.items()):
        entry = {"version": version, "role": role, **group.figures()}
        if window_s:
            entry["windows"] = [{"start": start * window_s, **g.figures()}
                                for start, g in sorted(windows[(version, role)].items())]
        groups.append(entry)
    return {"groups": groups, "window_s": window_s}


def headline(figures: dict[str, Any]) -> tuple[str, float] | None:
    """The one number a person watches for an output: accuracy for classes, MAE for numbers."""
    if "accuracy" in figures:
        return "accuracy", figures["accuracy"]
    if "mae" in figures:
        return "mae", figures["mae"]
    return None

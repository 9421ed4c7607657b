"""`meshserve compare` compares like with like: each output column on its own, a shadow and its
primary on the same requests, a canary and its primary over the window both were live, and it
says how sure it is and what it concludes."""

from __future__ import annotations

import json
from html import escape

import numpy as np
import pytest

from meshserve.cli.main import main
from meshserve.sidecars.compare.comparison import compare
from meshserve.sidecars.compare.report import page, text
from meshserve.sidecars.records.store import SQLiteStore

MODEL = "breast-cancer"


def record(request_id, version, t, label, benign, role="primary", slot="answer", code="OK", features=True):
    probabilities = {"datatype": "FP64", "shape": [1, 2], "values": [[1 - benign, benign]]}
    if features:
        probabilities["features"] = ["malignant", "benign"]
    return {"kind": "record", "request_id": request_id, "slot": slot, "trace_id": "", "time": float(t),
            "side": "adapter", "model": MODEL, "version": version, "role": role, "digest": f"d{version}",
            "training_data_sha256": "", "code_revision": "", "code": code, "error": "" if code == "OK" else "boom",
            "latency_s": 0.002, "batch_size": 1, "timings": {},
            "inputs": {"features": {"datatype": "FP64", "shape": [1, 1], "values": [[float(t)]]}},
            "outputs": {"label": {"datatype": "INT64", "shape": [1], "values": [int(label)]},
                        "probabilities": probabilities}}


def shadow(request_id, version, t, label, benign, **more):
    return record(request_id, version, t, label, benign, role="shadow", slot=f"shadow:{version}", **more)


@pytest.fixture
def store(tmp_path):
    opened = SQLiteStore(tmp_path / "records.db")
    yield opened
    opened.close()


def only(entries, version):
    [entry] = [e for e in entries if e["version"] == version]
    return entry


def test_a_two_column_probability_output_is_compared_column_by_column_never_pooled(store):
    """Pooled, P(malignant) and P(benign) of any binary model have the same median (0.5) and the same
    values, so a canary that flips every probability looked identical to its primary."""
    rng = np.random.default_rng(1)
    primary = [record(f"p{i}", "1", i, 0, b) for i, b in enumerate(rng.uniform(0.2, 0.4, 300))]
    canary = [record(f"c{i}", "2", i, 1, b, role="canary") for i, b in enumerate(rng.uniform(0.6, 0.8, 300))]
    store.ingest(primary + canary, [], {})

    entry = only(compare(store, MODEL)["canaries"], "2")
    columns = entry["outputs"]["probabilities"]["columns"]
    assert list(columns) == ["malignant", "benign"]
    for name in columns:
        assert columns[name]["ks_statistic"] == 1.0 and columns[name]["ks_pvalue"] < 1e-6
        assert columns[name]["n"] == {"primary": 300, "canary": 300}
    assert columns["benign"]["primary"]["p50"] == pytest.approx(0.3, abs=0.03)
    assert columns["benign"]["canary"]["p50"] == pytest.approx(0.7, abs=0.03)
    assert entry["verdict"]["verdict"] == "worse"
    assert "probabilities[benign]" in entry["verdict"]["reason"]
    said = text(compare(store, MODEL))
    assert "probabilities[malignant]" in said and "probabilities[benign]" in said


def test_columns_without_feature_names_are_named_by_position(store):
    store.ingest([record(f"p{i}", "1", i, 0, 0.3, features=False) for i in range(5)]
                 + [shadow(f"p{i}", "3", i, 0, 0.4, features=False) for i in range(5)], [], {})
    entry = only(compare(store, MODEL)["shadows"], "3")
    columns = entry["outputs"]["probabilities"]["columns"]
    assert list(columns) == ["probabilities_0", "probabilities_1"]
    assert columns["probabilities_1"]["mean_difference"] == pytest.approx(0.1)
    assert columns["probabilities_0"]["mean_difference"] == pytest.approx(-0.1)


def outcome_store(store, primary_right, shadow_right, shadowed):
    """400 requests answered by version 1; SHADOWED of them copied to shadow version 3; the true label
    of every request is 1, so a side is right where it answered 1."""
    records = [record(f"r{i}", "1", i, int(primary_right(i)), 0.5) for i in range(400)]
    records += [shadow(f"r{i}", "3", i, int(shadow_right(i)), 0.5) for i in range(400) if shadowed(i)]
    store.ingest(records, [], {})
    store.save_outcomes([(f"r{i}", 1000.0 + i, {"label": 1}) for i in range(400)])


def test_a_shadow_and_its_primary_are_scored_on_the_same_requests(store):
    """The primary is right on 75% of all outcomes but on only 60% of the requests the shadow copied,
    where the shadow is right on 70%: on the same requests the shadow is better, not worse."""
    outcome_store(store, primary_right=lambda i: (i % 10 < 6) if i < 200 else (i % 10 < 9),
                  shadow_right=lambda i: i % 10 < 7, shadowed=lambda i: i < 200)
    entry = only(compare(store, MODEL)["shadows"], "3")
    figures = entry["quality"]["outputs"]["label"]
    assert entry["quality"]["requests"] == 200
    assert figures["primary"] == {"n": 200, "accuracy": pytest.approx(0.60)}
    assert figures["shadow"] == {"n": 200, "accuracy": pytest.approx(0.70)}
    assert figures["difference"] == pytest.approx(0.10)
    low, high = figures["interval"]
    assert low < 0.10 < high and figures["pvalue"] < 1e-4
    assert entry["verdict"]["verdict"] == "better" and entry["verdict"]["basis"] == "quality"


def test_a_shadow_wrong_where_its_primary_is_right_is_worse(store):
    outcome_store(store, primary_right=lambda i: i % 10 < 8, shadow_right=lambda i: i % 10 < 6,
                  shadowed=lambda i: True)
    entry = only(compare(store, MODEL)["shadows"], "3")
    assert entry["quality"]["outputs"]["label"]["difference"] == pytest.approx(-0.2)
    assert entry["verdict"]["verdict"] == "worse" and "accuracy" in entry["verdict"]["reason"]


def test_the_same_accuracy_on_the_same_requests_is_no_evidence_either_way(store):
    outcome_store(store, primary_right=lambda i: i % 10 < 7, shadow_right=lambda i: (i + 1) % 10 < 7,
                  shadowed=lambda i: True)
    entry = only(compare(store, MODEL)["shadows"], "3")
    assert entry["quality"]["outputs"]["label"]["pvalue"] > 0.05
    assert entry["verdict"]["verdict"] == "no evidence yet"
    assert "p " in entry["verdict"]["reason"] or "chance" in entry["verdict"]["reason"]


def test_a_canary_is_compared_with_the_primary_only_while_both_were_live(store):
    """The primary answered 0 for the first 500 s and 1 after; the canary ran from 600 s to 700 s and
    answered 1, like the primary then. Over the whole run their labels would look far apart."""
    primary = [record(f"p{t}", "1", t, int(t >= 500), 0.5) for t in range(1000)]
    canary = [record(f"c{t}", "2", t + 0.5, 1, 0.5, role="canary") for t in range(600, 700)]
    canary.append(record("c-last", "2", 700, 1, 0.5, role="canary"))
    store.ingest(primary + canary, [], {})

    entry = only(compare(store, MODEL)["canaries"], "2")
    assert entry["window"] == {"start": 600.5, "end": 700.0}
    assert entry["requests"] == 101 and entry["primary_requests"] == 100  # primary at 601 .. 700
    assert entry["outputs"]["label"]["jensen_shannon"] == 0.0
    assert entry["warnings"] == []
    assert entry["verdict"]["verdict"] == "no evidence yet"
    assert "within" in entry["verdict"]["reason"] and "outcomes" in entry["verdict"]["reason"]


def test_25_canary_requests_are_too_few_to_judge_and_it_says_so(store):
    primary = [record(f"p{t}", "1", t, 0, 0.3) for t in range(300)]
    canary = [record(f"c{t}", "2", t + 0.5, 1, 0.9, role="canary") for t in range(100, 125)]
    store.ingest(primary + canary, [], {})
    report = compare(store, MODEL)
    entry = only(report["canaries"], "2")
    assert entry["requests"] == 25
    [warning] = entry["warnings"]
    assert "25" in warning and "100" in warning
    assert entry["verdict"]["verdict"] == "no evidence yet" and entry["verdict"]["basis"] == "sample size"
    assert "25" in entry["verdict"]["reason"]
    said = text(report)
    assert f"WARNING: {warning}" in said and "verdict for canary version 2: no evidence yet" in said


@pytest.mark.parametrize("canary_right, verdict", [(0.95, "better"), (0.5, "worse"), (0.7, "no evidence yet")])
def test_a_canary_is_judged_on_outcomes_over_the_same_window(store, canary_right, verdict):
    def right(i, share):
        return (i % 20) < share * 20

    primary = [record(f"p{i}", "1", i, int(right(i, 0.7)), 0.5) for i in range(400)]
    canary = [record(f"c{i}", "2", i, int(right(i, canary_right)), 0.5, role="canary") for i in range(400)]
    store.ingest(primary + canary, [], {})
    store.save_outcomes([(f"{side}{i}", 2000.0, {"label": 1}) for side in "pc" for i in range(400)])
    entry = only(compare(store, MODEL)["canaries"], "2")
    figures = entry["quality"]["outputs"]["label"]
    assert figures["primary"]["accuracy"] == pytest.approx(0.7)
    assert figures["canary"]["accuracy"] == pytest.approx(canary_right)
    assert entry["verdict"]["verdict"] == verdict and entry["verdict"]["basis"] == "quality"


def test_a_shadow_that_disagrees_beyond_the_threshold_without_outcomes_is_worse(store):
    store.ingest([record(f"r{i}", "1", i, 0, 0.3) for i in range(300)]
                 + [shadow(f"r{i}", "3", i, int(i % 4 == 0), 0.3) for i in range(300)], [], {})
    entry = only(compare(store, MODEL)["shadows"], "3")
    assert entry["outputs"]["label"]["agreement"] == pytest.approx(0.75)
    assert entry["verdict"]["verdict"] == "worse" and entry["verdict"]["basis"] == "agreement"


def test_text_json_and_html_say_the_same_verdicts_and_thresholds(store, tmp_path, capsys):
    store.ingest([record(f"p{t}", "1", t, 0, 0.3) for t in range(300)]
                 + [record(f"c{t}", "2", t + 0.5, 0, 0.3, role="canary") for t in range(100, 125)], [], {})
    html_path = tmp_path / "compare.html"
    assert main(["compare", MODEL, "--store", store.url, "--json", "--html", str(html_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    entry = only(report["canaries"], "2")
    assert report["thresholds"]["min_requests"] == 100
    assert main(["compare", MODEL, "--store", store.url, "--min-requests", "20"]) == 0
    said = capsys.readouterr().out
    assert "at least 20 requests" in said and "WARNING" not in said
    page_text = html_path.read_text()
    assert entry["verdict"]["reason"] in text(report)
    assert "no evidence yet" in page_text and escape(entry["warnings"][0]) in page_text
    assert page(report).count("verdict") >= 1

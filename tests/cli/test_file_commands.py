"""Commands that read a table file (`meshserve outcomes`, `batch`, `baseline`, `package
--training-data`), called as a user types them: a file that is not there, or not a table, is one
line naming it and the endings meshserve reads, before any mesh or model is reached; and the
outcomes a user reports arrive in the store as written."""

from __future__ import annotations

import shutil
import sqlite3
import sys

import pytest

from conftest import EXAMPLES
from meshserve.cli.main import main


def said(capsys) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_outcomes_from_a_csv_keep_their_request_ids_as_written_and_a_broken_row_is_counted(tmp_path, capsys):
    rows = tmp_path / "outcomes.csv"
    rows.write_text("request_id,label,time\n007,1,1700000000\n0042,0,\n013,1,2,extra\n,1,\n")
    store = tmp_path / "records.db"
    assert main(["outcomes", str(rows), "--store", f"sqlite:///{store}"]) == 0
    out, err = said(capsys)
    assert "4 rows read, 2 outcomes stored" in out
    assert "2 unknown request ids" in out
    assert "2 malformed rows skipped" in out
    assert "line 4: expected 3 columns, got 4" in out and "row 4: no 'request_id'" in out
    assert "reading the records store" in err
    with sqlite3.connect(store) as db:
        stored = dict(db.execute("SELECT request_id, body FROM outcomes ORDER BY request_id"))
    assert stored == {"0042": '{"label": 0}', "007": '{"label": 1}'}, "ids keep their zeros; values are numbers"

    assert main(["outcomes", str(rows), "--store", f"sqlite:///{store}"]) == 0
    assert "2 replaced an outcome reported earlier" in said(capsys)[0]


def test_outcomes_from_json_lines_skip_a_line_that_is_not_json_and_say_which(tmp_path, capsys):
    rows = tmp_path / "outcomes.jsonl.gz"
    import gzip

    with gzip.open(rows, "wt") as handle:
        handle.write('{"request_id": "a-1", "label": 1}\n{"request_id": "a-2", "label": [0, 1]}\nlabel=1\n')
    assert main(["outcomes", str(rows), "--store", f"sqlite:///{tmp_path / 'records.db'}"]) == 0
    out = said(capsys)[0]
    assert "3 rows read, 2 outcomes stored" in out and "line 3: not JSON" in out


@pytest.mark.parametrize("argv", [
    ["outcomes", "{missing}", "--store", "sqlite:///{tmp}/records.db"],
    ["batch", "iris", "{missing}", "-o", "{tmp}/scored.csv"],
])
def test_a_file_that_is_not_there_is_named_with_exit_status_2(tmp_path, capsys, argv):
    missing = tmp_path / "rows.csv"
    code = main([part.format(missing=missing, tmp=tmp_path) for part in argv])
    assert code == 2
    assert said(capsys)[1].strip().endswith(f"meshserve: {missing}: no such file")


def test_outcomes_in_a_file_of_no_table_format_are_refused_naming_the_endings_meshserve_reads(tmp_path, capsys):
    rows = tmp_path / "outcomes.xlsx"
    rows.write_bytes(b"PK\x03\x04")
    assert main(["outcomes", str(rows), "--store", f"sqlite:///{tmp_path / 'records.db'}"]) == 2
    err = said(capsys)[1]
    assert f"meshserve: {rows}: field '(file)': '.xlsx' is not a table format meshserve reads" in err
    assert ".csv, .tsv, .parquet (or .pq), .jsonl" in err and ".csv.gz" in err


def test_batch_refuses_an_output_it_could_not_write_before_asking_any_mesh(tmp_path, capsys):
    rows = tmp_path / "rows.tsv"
    rows.write_text("a\tb\n1\t2\n")
    assert main(["batch", "iris", str(rows), "-o", str(tmp_path / "scored.xls"), "--address", "127.0.0.1:9"]) == 1
    err = said(capsys)[1]
    assert f"meshserve: {tmp_path / 'scored.xls'}: '.xls' is not a table format meshserve reads" in err
    assert not (tmp_path / "scored.xls.parts").exists()


@pytest.mark.parametrize("option, value", [("--chunk-rows", "-1"), ("--in-flight", "0")])
def test_batch_refuses_chunk_and_concurrency_settings_that_cannot_work(tmp_path, capsys, option, value):
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,2\n")
    assert main(["batch", "iris", str(rows), "-o", str(tmp_path / "out.csv"), option, value]) == 2
    assert "--chunk-rows must be at least 1 (or 0 for automatic) and --in-flight at least 1" in said(capsys)[1]


def test_a_baseline_from_training_data_of_no_table_format_names_the_file_and_the_endings(tmp_path, capsys):
    package = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris_species", package)
    data = tmp_path / "train.txt"
    data.write_text("sepal_length 5.1\n")
    assert main(["baseline", str(package), "--data", str(data)]) == 2
    err = said(capsys)[1]
    assert f"meshserve: {data}: field '(file)': '.txt' is not a table format meshserve reads" in err


def test_package_training_data_that_cannot_be_parsed_names_the_option_and_the_reason(tmp_path, capsys):
    package = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris_species", package)
    data = tmp_path / "train.jsonl"
    data.write_text('{"sepal_length": 5.1}\n{"sepal_length": \n')
    assert main(["package", str(package), "--training-data", str(data)]) == 2
    err = said(capsys)[1]
    assert f"meshserve: {data}: field '--training-data': cannot be read as JSON lines: line 2: not JSON" in err
    assert "one JSON object per line" in err

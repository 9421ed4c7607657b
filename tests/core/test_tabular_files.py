"""Every part that reads rows from a file reads the same files the same way: the endings
meshserve takes, gzipped text, tables of a fixed number of rows for files larger than memory,
and an error naming the file, the option and what to do for anything else."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meshserve.core.tabular_files import (
    TableWriter, TabularFileError, count_rows, format_of, iter_rows, iter_tables, read_table)

ROWS = pa.table({"id": ["r1", "r2", "r3", "r4", "r5"], "x": [1.5, 2.0, 2.5, 3.0, 3.5]})


def written(path, table: pa.Table = ROWS):
    writer = TableWriter(path, table.schema, format_of(path))
    writer.write(table)
    writer.close()
    return path


@pytest.mark.parametrize("name", ["rows.csv", "rows.CSV", "rows.tsv", "rows.csv.gz", "rows.tsv.gz", "rows.parquet",
                                  "rows.pq", "rows.jsonl", "rows.ndjson", "rows.json", "rows.jsonl.gz"])
def test_every_ending_meshserve_takes_reads_back_what_was_written(tmp_path, name):
    path = written(tmp_path / name)
    assert read_table(path).to_pylist() == ROWS.to_pylist()
    assert count_rows(path) == 5
    assert [t.num_rows for t in iter_tables(path, 2)] == [2, 2, 1]
    assert list(iter_rows(path)) == ROWS.to_pylist()


def test_gzipped_text_is_compressed_on_disk(tmp_path):
    path = written(tmp_path / "rows.csv.gz")
    assert gzip.decompress(path.read_bytes()).startswith(b'"id","x"\n')


@pytest.mark.parametrize("name, shown", [("rows.xlsx", ".xlsx"), ("rows.parquet.gz", ".parquet.gz"),
                                         ("rows", "(no ending)"), ("rows.txt.gz", ".txt.gz")])
def test_an_ending_meshserve_does_not_read_is_refused_naming_the_file_and_the_endings(tmp_path, name, shown):
    with pytest.raises(TabularFileError) as refused:
        read_table(tmp_path / name, field="--golden-from")
    error = refused.value
    assert (error.path, error.field) == (str(tmp_path / name), "--golden-from")
    assert error.problem == f"'{shown}' is not a table format meshserve reads"
    assert ".csv, .tsv, .parquet (or .pq), .jsonl (or .ndjson, .json" in error.fix


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(TabularFileError) as refused:
        list(iter_tables(tmp_path / "gone.parquet", 10))
    assert refused.value.problem == "no such file"


def test_tables_of_a_fixed_size_split_the_same_file_at_the_same_rows_whatever_its_blocks(tmp_path):
    big = pa.table({"n": list(range(10_007))})
    path = tmp_path / "big.parquet"
    pq.write_table(big, path, row_group_size=333)  # row groups that do not divide the chunk size
    chunks = list(iter_tables(path, 1000))
    assert [c.num_rows for c in chunks] == [1000] * 10 + [7]
    assert [c["n"][0].as_py() for c in chunks] == list(range(0, 10_007, 1000))


def test_json_lines_whose_numbers_widen_in_a_later_block_read_as_one_column(tmp_path, monkeypatch):
    import meshserve.core.tabular_files as tabular_files

    monkeypatch.setattr(tabular_files, "JSON_BLOCK_BYTES", 16)  # every line a block of its own
    path = tmp_path / "rows.jsonl"
    path.write_text('{"x": 1}\n{"x": 2}\n\n{"x": 2.5}\n')
    (table,) = iter_tables(path, 10)
    assert table.column("x").type == pa.float64() and table.column("x").to_pylist() == [1.0, 2.0, 2.5]


def test_a_broken_row_stops_the_reading_naming_its_line_unless_the_reader_skips_such_rows(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"x": 1}\n{"x": \n[1, 2]\n{"x": 3}\n')
    with pytest.raises(TabularFileError) as refused:
        read_table(path)
    assert "cannot be read as JSON lines: line 2: not JSON" in refused.value.problem
    skipped: list[str] = []
    assert [t.to_pylist() for t in iter_tables(path, 10, on_invalid_row=skipped.append)] == [[{"x": 1}, {"x": 3}]]
    assert skipped == ["line 2: not JSON (Expecting value)", "line 3: a JSON list, not an object of columns"]

    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n1,2\n3\n4,5\n")
    skipped.clear()
    assert list(iter_rows(csv, on_invalid_row=skipped.append)) == [{"a": 1, "b": 2}, {"a": 4, "b": 5}]
    assert skipped == ["line 3: expected 2 columns, got 1"]
    with pytest.raises(TabularFileError, match="Expected 2 columns, got 1"):
        list(iter_tables(csv, 10))


def test_cells_as_text_keep_a_csv_as_written(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text('request_id,label\n007,1\n0042,"[0, 1]"\n')
    assert list(iter_rows(path, cells_as_text=True)) == [{"request_id": "007", "label": "1"},
                                                        {"request_id": "0042", "label": "[0, 1]"}]
    assert read_table(path).column("request_id").to_pylist() == [7, 42]


def test_json_rows_may_change_type_from_row_to_row(tmp_path):
    path = tmp_path / "outcomes.jsonl"
    path.write_text('{"id": "a", "label": 1}\n{"id": "b", "label": [0, 1]}\n')
    assert list(iter_rows(path)) == [{"id": "a", "label": 1}, {"id": "b", "label": [0, 1]}]
    with pytest.raises(TabularFileError, match="changed from number to array"):
        read_table(path)

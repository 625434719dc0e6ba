"""Input that does not parse: bad CSV and NDJSON lines, corrupt Parquet files and row groups.

Under on_error="quarantine" each bad line goes to the dead-letter dataset with its file, its
1-based line number (a CSV header is line 1) and its text, and the good lines go on; a corrupt
Parquet file or row group is one dead-letter record naming the file. Under on_error="raise"
the read fails naming the file and the line. The oracle is Python's csv and json modules (and
pyarrow.parquet for the good Parquet files): they decide independently which lines are good,
what they hold, and on which line each record starts.
"""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from test_retries import Flaky

import sluice as sl
from sluice import col
from sluice.errors import CorruptFileError, TooManyBadRecordsError, TransientError

CSV_SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.float64()), ("code", pa.string())])


@pytest.fixture
def runs(tmp_path, runner):
    sl.configure(runs_dir=str(tmp_path / "runs"), max_bad_records=100)
    return tmp_path / "runs"


def _dead_letters(ds) -> list[dict]:
    return sorted(ds.bad_records().to_arrow().to_pylist(), key=lambda r: (r["source_file"], r["row_position"] or 0))


# ---------------------------------------------------------------- CSV


def _csv_lines(first_id: int, n: int) -> list[str]:
    return [f"{i},name {i},{i / 4},{i}" for i in range(first_id, first_id + n)]


def _write_csv(path, lines: list[str]) -> None:
    path.write_text("id,name,score,code\n" + "\n".join(lines) + "\n")


def _csv_oracle(path) -> tuple[list[tuple], dict[int, str]]:
    """(good rows, {line number: text} of bad lines) by Python's csv module, with the types of CSV_SCHEMA."""
    good, bad = [], {}
    with open(path, newline="") as f:
        raw_lines = f.read().split("\n")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        previous = reader.line_num
        for fields in reader:
            first_line, previous = previous + 1, reader.line_num
            if not fields:
                continue  # a blank line
            try:
                if len(fields) != 4:
                    raise ValueError("wrong column count")
                good.append((int(fields[0]), fields[1], float(fields[2]), fields[3]))
            except ValueError:
                bad[first_line] = raw_lines[first_line - 1]
    return good, bad


@pytest.fixture
def bad_csv(tmp_path):
    """Two files: a column-count error and a type error on known lines, after a blank line and a
    quoted value spanning two lines (so line numbers differ from row numbers)."""
    directory = tmp_path / "csv"
    directory.mkdir()
    a = _csv_lines(0, 300)
    a[5] = '5,"two\nlines",1.25,5'
    a[9] = ""
    a[12] = '12,name O"Brien,3.0,12'  # a quote inside a value is a literal quote
    a[20] = "20,name 20,5.0,20,surplus"  # 5 columns
    a[250] = "250,name 250"  # 2 columns
    _write_csv(directory / "a.csv", a)
    b = _csv_lines(1000, 300)
    b[40] = "1040,name 1040,not a number,1040"  # type error in a float column
    b[41] = "x1041,name 1041,260.25,1041"  # type error in an int column
    b[120] = "1120,name 1120,280.0,x1120"  # a good line; its code fails a cast later
    _write_csv(directory / "b.csv", b)
    return directory


def test_bad_csv_lines_are_quarantined_with_their_line_numbers(bad_csv, runs):
    ds = sl.read_csv(bad_csv, schema=CSV_SCHEMA)
    got = ds.to_arrow()

    good, bad = [], {}
    for name in ("a.csv", "b.csv"):
        rows, lines = _csv_oracle(bad_csv / name)
        good += rows
        bad.update({(name, line): text for line, text in lines.items()})
    assert sorted(got.to_pylist(), key=lambda r: r["id"]) == [
        dict(zip(CSV_SCHEMA.names, row)) for row in sorted(good)]
    assert len(bad) == 4 and len(good) == 600 - 4 - 1  # 1 blank line

    letters = _dead_letters(ds)
    assert ds.stats().bad_records == len(letters) == 4
    assert sum(stage.bad_records for stage in ds.stats().stages.values()) == 4
    assert {(r["source_file"].rsplit("/", 1)[1], r["row_position"]): json.loads(r["record_json"])["line"]
            for r in letters} == bad
    by_line = {r["row_position"]: r for r in letters}
    assert by_line[23]["message"] == "expected 4 columns, got 5"  # a[20]: line 22 + header + the quoted newline
    assert by_line[253]["message"] == "expected 4 columns, got 2"
    assert "column 'score'" in by_line[42]["message"] and "not a number" in by_line[42]["message"]
    assert "column 'id'" in by_line[43]["message"] and "x1041" in by_line[43]["message"]
    for r in letters:
        assert r["exception_type"] == "ArrowInvalid" and r["operator"] == "Scan"
        assert r["run_id"] == ds.stats().run_id and r["record_ipc"] is None


def test_a_row_failing_later_points_at_its_line(bad_csv, runs):
    # provenance of rows from text files is their line too, counted past the quarantined lines
    ds = sl.read_csv(bad_csv, schema=CSV_SCHEMA).with_columns(n=col("code").cast("int64"))
    assert ds.to_arrow().num_rows == 600 - 4 - 1 - 1
    cast_failures = [r for r in _dead_letters(ds) if r["operator"] != "Scan"]
    assert len(cast_failures) == 1
    (failure,) = cast_failures
    _, bad = _csv_oracle(bad_csv / "b.csv")
    assert failure["source_file"].endswith("b.csv") and failure["row_position"] == 122
    assert json.loads(failure["record_json"])["code"] == "x1120"
    assert 122 not in bad


def test_bad_csv_line_under_raise_names_the_file_the_line_and_the_fix(bad_csv, runs):
    sl.configure(on_error="raise")
    with pytest.raises(CorruptFileError) as info:
        sl.read_csv(bad_csv / "a.csv", schema=CSV_SCHEMA).to_arrow()
    message = str(info.value)
    assert "line 23 of" in message and "a.csv" in message and "expected 4 columns, got 5" in message
    assert 'on_error="quarantine"' in message


def test_inferred_schema_skips_bad_lines_and_the_conversion_error_is_quarantined(tmp_path, runs):
    # the schema comes from a.csv (id: int64); a non-integer id in b.csv is a bad line of b.csv
    lines = _csv_lines(0, 50)
    lines[3] = "3,name 3"
    _write_csv(tmp_path / "a.csv", lines)
    lines = _csv_lines(50, 50)
    lines[7] = "fifty-seven,name 57,14.25,57"
    _write_csv(tmp_path / "b.csv", lines)
    ds = sl.read_csv([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    assert ds.schema.field("id").type == pa.int64()
    assert sorted(ds.to_arrow().column("id").to_pylist()) == [i for i in range(100) if i not in (3, 57)]
    assert [(r["source_file"].rsplit("/", 1)[1], r["row_position"]) for r in _dead_letters(ds)] == [
        ("a.csv", 5), ("b.csv", 9)]


def test_a_file_where_no_line_parses_is_an_error_not_bad_data(tmp_path, runs):
    _write_csv(tmp_path / "a.csv", _csv_lines(0, 40))
    (tmp_path / "b.csv").write_text("id,name,score,code\n" + "\n".join(f"id{i},x,y,z" for i in range(40)) + "\n")
    with pytest.raises(CorruptFileError, match=r"(?s)b\.csv.*does not fit the schema.*Pass schema="):
        sl.read_csv(tmp_path, schema=CSV_SCHEMA).to_arrow()


# ---------------------------------------------------------------- NDJSON


def _json_oracle(path) -> tuple[list[dict], dict[int, str]]:
    """(good rows, {line: text} of bad lines): a good line is an object with an int id and a str name."""
    good, bad = [], {}
    for number, line in enumerate(path.read_text().split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            if not (isinstance(value, dict) and type(value.get("id")) is int and isinstance(value.get("name"), str)):
                raise ValueError("not a record of the schema")
            good.append({"id": value["id"], "name": value["name"]})
        except ValueError:
            bad[number] = line
    return good, bad


@pytest.fixture
def bad_json(tmp_path):
    lines = [json.dumps({"id": i, "name": f"n{i}"}) for i in range(500)]
    lines[2] = '{"id": 2, "name": "n2"'  # truncated
    lines[30] = ""
    lines[77] = '{"id": "seventy-seven", "name": "n77"}'  # a string in an int column
    lines[78] = "[78, 79]"  # not an object
    lines[499] = '{"id": 499, "na'  # the last line, cut off
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_ndjson_lines_are_quarantined_and_the_rest_read(bad_json, runs):
    ds = sl.read_json(bad_json)
    got = ds.to_arrow()
    good, bad = _json_oracle(bad_json)
    assert sorted(got.to_pylist(), key=lambda r: r["id"]) == good
    assert sorted(bad) == [3, 78, 79, 500]
    letters = _dead_letters(ds)
    assert {r["row_position"]: json.loads(r["record_json"])["line"] for r in letters} == bad
    assert all(r["source_file"] == str(bad_json) and r["exception_type"] == "ArrowInvalid" for r in letters)
    assert "changed from number to string" in {r["row_position"]: r for r in letters}[78]["message"]


def test_bad_ndjson_line_under_raise_names_the_line(bad_json, runs):
    sl.configure(on_error="raise")
    with pytest.raises(CorruptFileError, match=r"line 3 of .*events\.jsonl.* as ndjson"):
        sl.read_json(bad_json).to_arrow()


# ---------------------------------------------------------------- the error budget


def test_parse_errors_count_against_the_budget_over_the_rows_read(tmp_path, runs):
    lines = _csv_lines(0, 10_000)
    for i in range(0, 10_000, 1000):
        lines[i] = f"{i},too,many,fields,here"
    _write_csv(tmp_path / "data.csv", lines)
    sl.configure(max_bad_records=0.001)  # 10 of 10,000 rows: exactly 10 bad lines pass
    ds = sl.read_csv(tmp_path / "data.csv", schema=CSV_SCHEMA)
    assert ds.count() == 9_990
    assert ds.stats().bad_records == 10

    lines[1] = "1,too,many,fields,here"
    _write_csv(tmp_path / "data.csv", lines)
    with pytest.raises(TooManyBadRecordsError, match=r"11 bad records exceed the error budget"):
        sl.read_csv(tmp_path / "data.csv", schema=CSV_SCHEMA).count()

    sl.configure(max_bad_records=5)
    with pytest.raises(TooManyBadRecordsError, match=r"max_bad_records=5"):
        sl.read_csv(tmp_path / "data.csv", schema=CSV_SCHEMA).count()


# ---------------------------------------------------------------- Parquet


@pytest.fixture
def parquet_dir(tmp_path):
    """Five files of 1,000 rows; part-0 (the first, whose footer gives the schema) is cut in half and
    part-3 has a garbled data page. Returns (directory, good rows as a table)."""
    directory = tmp_path / "lake"
    directory.mkdir()
    good = []
    for i in range(5):
        table = pa.table({"id": np.arange(i * 1000, (i + 1) * 1000), "value": np.random.default_rng(i).random(1000)})
        pq.write_table(table, directory / f"part-{i}.parquet")
        if i not in (0, 3):
            good.append(table)
    data = (directory / "part-0.parquet").read_bytes()
    (directory / "part-0.parquet").write_bytes(data[: len(data) // 2])
    _garble_page(directory / "part-3.parquet", row_group=0, column=1)
    return directory, pa.concat_tables(good)


def _garble_page(path, row_group: int, column: int) -> None:
    """Overwrite the page header of one column chunk, so decoding that row group fails."""
    offset = pq.ParquetFile(path).metadata.row_group(row_group).column(column).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset:offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def test_corrupt_parquet_files_are_quarantined_and_the_others_read(parquet_dir, runs):
    directory, good = parquet_dir
    ds = sl.read_parquet(directory)
    got = ds.to_arrow().sort_by("id")
    assert got.equals(good.sort_by("id"))
    letters = _dead_letters(ds)
    assert ds.stats().bad_records == len(letters) == 2
    assert [r["source_file"].rsplit("/", 1)[1] for r in letters] == ["part-0.parquet", "part-3.parquet"]
    for r in letters:
        assert r["row_position"] is None and r["record_json"] is None and r["record_ipc"] is None
        assert r["exception_type"] == "CorruptFileError" and r["source_file"] in r["message"]


def test_a_fused_aggregation_over_corrupt_files_quarantines_them_too(parquet_dir, runs, runner):
    """On the local runner this small aggregation is one fused Polars query that reads the files
    itself; it fails on the corrupt ones, and the rerun through the read tasks quarantines them."""
    directory, good = parquet_dir
    ds = (sl.read_parquet(directory).with_columns(bucket=col("id") % 7)
          .group_by("bucket").agg(n=sl.count(), positive=(col("value") > 0).sum()))  # reads part-3's bad page
    got = ds.to_arrow().sort_by("bucket").to_pydict()
    assert dict(zip(got["bucket"], got["n"])) == Counter(i % 7 for i in good["id"].to_pylist())
    assert [r["source_file"].rsplit("/", 1)[1] for r in _dead_letters(ds)] == ["part-0.parquet", "part-3.parquet"]
    if runner == "local":
        assert any("the fused query failed" in note for note in ds.stats().notes)


def test_a_corrupt_parquet_file_under_raise_names_the_file(parquet_dir, runs):
    directory, _ = parquet_dir
    sl.configure(on_error="raise")
    with pytest.raises(CorruptFileError, match=r"part-0\.parquet.*corrupt.*on_error=\"quarantine\""):
        sl.read_parquet(directory).to_arrow()


def test_each_corrupt_file_is_one_bad_record_against_the_budget(parquet_dir, runs):
    directory, _ = parquet_dir
    sl.configure(max_bad_records=1)
    with pytest.raises(TooManyBadRecordsError, match="2 bad records"):
        sl.read_parquet(directory).to_arrow()


def test_a_corrupt_row_group_is_quarantined_alone_and_provenance_skips_it(tmp_path, runs):
    # a small memory budget makes read tasks of a few MiB, so the file is read by row groups
    sl.configure(memory_budget="64MiB")
    n, group = 800_000, 100_000
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": np.arange(n), "value": np.random.default_rng(3).random(n)}), path,
                   row_group_size=group)
    _garble_page(path, row_group=3, column=1)

    def fail_on_one_id(batch):
        if (batch["id"] == 250_123).any():
            raise ValueError("cannot score 250123")
        return batch

    ds = sl.read_parquet(path).map_batches(fail_on_one_id, batch_format="pandas", compute="threads")
    ids = ds.to_arrow().column("id").to_numpy()
    expected = np.arange(n)
    expected = expected[((expected < 3 * group) | (expected >= 4 * group)) & (expected != 250_123)]
    assert np.array_equal(np.sort(ids), expected)

    letters = _dead_letters(ds)
    corrupt = [r for r in letters if r["operator"] == "Scan"]
    assert len(corrupt) == 1 and "(row group 3)" in corrupt[0]["message"]
    (udf,) = [r for r in letters if r["operator"] != "Scan"]
    assert udf["source_file"] == str(path) and udf["row_position"] == 250_123


def test_transient_errors_are_retried_not_quarantined(parquet_dir, tmp_path, runs, runner):
    if runner == "ray":
        pytest.skip("the failing filesystem wrapper holds a lock, so it cannot travel to Ray workers")
    directory, good = parquet_dir
    sl.configure(retry_attempts=3, retry_backoff_s=0.001)
    flaky = Flaky(pafs.LocalFileSystem())
    ds = sl.read_parquet(str(directory), filesystem=pafs.PyFileSystem(flaky))
    flaky.arm(fail_reads=1, only="part-3")  # the file with the garbled page fails once, as a network would
    assert ds.to_arrow().sort_by("id").equals(good.sort_by("id"))
    assert ds.stats().retries == flaky.injected == 1
    assert [r["source_file"].rsplit("/", 1)[1] for r in _dead_letters(ds)] == ["part-0.parquet", "part-3.parquet"]

    flaky.arm(fail_reads=1_000, only="part-3")  # a file that never answers is not corrupt: the run fails
    with pytest.raises(TransientError, match="part-3"):
        ds.to_arrow()

    lines = _csv_lines(0, 100)
    lines[10] = "10,short"
    _write_csv(tmp_path / "flaky.csv", lines)
    flaky.arm(fail_reads=1)
    ds = sl.read_csv(str(tmp_path / "flaky.csv"), filesystem=pafs.PyFileSystem(flaky), schema=CSV_SCHEMA)
    assert ds.count() == 99 and ds.stats().retries == flaky.injected >= 1
    assert [r["row_position"] for r in _dead_letters(ds)] == [12]

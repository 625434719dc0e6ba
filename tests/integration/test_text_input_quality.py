"""Text input that is wrong in ways Arrow lets through: invalid UTF-8, a few lines that do not fit a
column's type, and cells longer than Arrow's reading blocks.

Invalid UTF-8 in a CSV or NDJSON line is a bad line (a dead letter naming the file, the line, the byte
and showing the raw bytes), never a string column holding undecodable data, nor a CSV column turned
binary. When a schema is inferred, a column takes the type all but a few sampled lines fit (within
the error budget), and those lines are bad records, instead of one bad value making the column a
string. A cell or line of any length reads.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

import sluice as sl
from sluice.errors import CorruptFileError


@pytest.fixture
def runs(tmp_path, runner):
    sl.configure(runs_dir=str(tmp_path / "runs"), max_bad_records=0.001)
    return tmp_path / "runs"


def _dead_letters(ds) -> list[dict]:
    return sorted(ds.bad_records().to_arrow().to_pylist(), key=lambda r: (r["source_file"], r["row_position"] or 0))


def _valid_utf8(table: pa.Table) -> None:
    table.validate(full=True)  # raises on a string holding invalid UTF-8
    table.to_pylist()  # what a consumer does: would raise UnicodeDecodeError


# ---------------------------------------------------------------- invalid UTF-8


def _ndjson_with_invalid_utf8(tmp_path):
    lines = [json.dumps({"id": i, "name": f"n{i}"}).encode() for i in range(2000)]
    lines[7] = b'{"id": 7, "name": "\xff\xfe"}'
    lines[1500] = b'{"id": 1500, "name": "caf\xc3"}'  # a UTF-8 sequence cut short
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    offset_7 = sum(len(line) + 1 for line in lines[:7]) + lines[7].index(b"\xff")
    return path, offset_7


def test_invalid_utf8_in_ndjson_is_a_bad_line_not_a_corrupt_string(tmp_path, runs):
    path, offset = _ndjson_with_invalid_utf8(tmp_path)
    ds = sl.read_json(path)
    got = ds.to_arrow()
    _valid_utf8(got)
    assert pa.types.is_string(got.schema.field("name").type) or pa.types.is_large_string(got.schema.field("name").type)
    assert sorted(got.column("id").to_pylist()) == [i for i in range(2000) if i not in (7, 1500)]
    letters = _dead_letters(ds)
    assert [(r["source_file"], r["row_position"]) for r in letters] == [(str(path), 8), (str(path), 1501)]
    first = letters[0]
    assert first["message"].startswith(f"invalid UTF-8 at byte {offset} ")
    assert first["operator"] == "Scan" and first["run_id"] == ds.stats().run_id
    assert json.loads(first["record_json"])["line"] == '{"id": 7, "name": "\\xff\\xfe"}'  # the raw bytes, shown
    assert "invalid UTF-8 at byte" in letters[1]["message"]


def test_invalid_utf8_in_ndjson_under_raise_names_the_file_and_line(tmp_path, runs):
    path, offset = _ndjson_with_invalid_utf8(tmp_path)
    sl.configure(on_error="raise")
    with pytest.raises(CorruptFileError, match=rf"line 8 of .*events\.jsonl.*invalid UTF-8 at byte {offset}") as info:
        sl.read_json(path).to_arrow()
    assert "xff" in str(info.value) and "pass schema=" in str(info.value)


def _csv_with_invalid_utf8(tmp_path):
    lines = [f"{i},name {i}".encode() for i in range(2000)]
    lines[3] = b"3,\xff\xfe"
    path = tmp_path / "data.csv"
    path.write_bytes(b"id,name\n" + b"\n".join(lines) + b"\n")
    return path, len(b"id,name\n") + sum(len(line) + 1 for line in lines[:3]) + 2


def test_invalid_utf8_in_an_inferred_csv_is_a_bad_line_and_the_column_stays_strings(tmp_path, runs):
    path, offset = _csv_with_invalid_utf8(tmp_path)
    ds = sl.read_csv(path)
    name_type = ds.schema.field("name").type
    assert pa.types.is_string(name_type) or pa.types.is_large_string(name_type)
    got = ds.to_arrow()
    _valid_utf8(got)
    assert sorted(got.column("name").to_pylist()) == sorted(f"name {i}" for i in range(2000) if i != 3)
    (letter,) = _dead_letters(ds)
    assert letter["source_file"] == str(path) and letter["row_position"] == 5  # the header is line 1
    assert letter["message"] == f"column 'name': invalid UTF-8 at byte {offset} (byte 2 of the line)"
    assert json.loads(letter["record_json"])["line"] == "3,\\xff\\xfe"


def test_invalid_utf8_in_a_csv_with_a_given_schema_is_a_bad_line(tmp_path, runs):
    path, offset = _csv_with_invalid_utf8(tmp_path)
    ds = sl.read_csv(path, schema=pa.schema([("id", pa.int64()), ("name", pa.string())]))
    _valid_utf8(ds.to_arrow())
    assert [(r["row_position"], r["message"]) for r in _dead_letters(ds)] == [
        (5, f"column 'name': invalid UTF-8 at byte {offset} (byte 2 of the line)")]


def test_a_binary_column_given_in_the_schema_keeps_its_bytes(tmp_path, runs):
    path, _ = _csv_with_invalid_utf8(tmp_path)
    with open(path, "ab") as f:
        f.write(b"notanumber,\xff\n")  # a bad line, so the file is read line by line too
    ds = sl.read_csv(path, schema=pa.schema([("id", pa.int64()), ("name", pa.binary())]))
    got = ds.to_arrow()
    assert got.num_rows == 2000 and [r["row_position"] for r in _dead_letters(ds)] == [2002]
    assert got.filter(pa.compute.equal(got.column("id"), 3)).column("name").to_pylist() == [b"\xff\xfe"]


# ---------------------------------------------------------------- inferred types with a few misfits


def test_one_bad_value_does_not_make_an_integer_column_a_string(tmp_path, runs):
    lines = [f"{i},{i * 10}" for i in range(2000)]
    lines[1234] = "notanumber,12340"
    (tmp_path / "left.csv").write_text("id,amount\n" + "\n".join(lines) + "\n")
    (tmp_path / "right.csv").write_text("id,label\n" + "\n".join(f"{i},l{i}" for i in range(0, 2000, 2)) + "\n")
    left = sl.read_csv(tmp_path / "left.csv")
    assert left.schema.field("id").type == pa.int64()
    joined = left.join(sl.read_csv(tmp_path / "right.csv"), on="id")
    assert sorted(joined.to_arrow().column("id").to_pylist()) == [i for i in range(0, 2000, 2) if i != 1234]
    (letter,) = _dead_letters(joined)
    assert letter["row_position"] == 1236 and json.loads(letter["record_json"])["line"] == "notanumber,12340"
    assert "column 'id'" in letter["message"] and "notanumber" in letter["message"]


def test_a_column_takes_the_type_that_fits_the_most_lines(tmp_path, runs):
    # mostly dates, some timestamps (all of them fit timestamp), one value that fits nothing
    lines = [f"2026-01-{1 + i % 28:02d}" if i % 10 else f"2026-01-{1 + i % 28:02d} 10:00:00" for i in range(3000)]
    lines[17] = "soon"
    (tmp_path / "a.csv").write_text("when\n" + "\n".join(lines) + "\n")
    ds = sl.read_csv(tmp_path / "a.csv")
    assert pa.types.is_timestamp(ds.schema.field("when").type)
    assert ds.count() == 2999
    assert [r["row_position"] for r in _dead_letters(ds)] == [19]


def test_a_column_with_more_misfits_than_the_budget_stays_a_string(tmp_path, runs):
    lines = [str(i) if i % 100 else f"code {i}" for i in range(3000)]  # 1% are not numbers: over 0.1%
    (tmp_path / "a.csv").write_text("code\n" + "\n".join(lines) + "\n")
    ds = sl.read_csv(tmp_path / "a.csv")
    assert pa.types.is_string(ds.schema.field("code").type) or pa.types.is_large_string(ds.schema.field("code").type)
    assert ds.count() == 3000 and ds.stats().bad_records == 0


def test_misfits_of_all_columns_together_stay_within_the_budget(tmp_path, runs):
    # each column alone has 2 misfits (within 0.1% of 3000 rows = 3); both together have 4: the second stays text
    lines = [f"{i},{i}" for i in range(3000)]
    lines[10], lines[20] = "x,10", "y,20"
    lines[30], lines[40] = "30,x", "40,y"
    (tmp_path / "a.csv").write_text("a,b\n" + "\n".join(lines) + "\n")
    ds = sl.read_csv(tmp_path / "a.csv")
    assert ds.schema.field("a").type == pa.int64()
    assert not pa.types.is_integer(ds.schema.field("b").type)
    assert ds.count() == 2998 and ds.stats().bad_records == 2


def test_under_raise_an_inferred_type_fits_every_sampled_line(tmp_path, runs):
    lines = [str(i) for i in range(2000)]
    lines[5] = "notanumber"
    (tmp_path / "a.csv").write_text("id\n" + "\n".join(lines) + "\n")
    sl.configure(on_error="raise")  # no bad record is allowed: the type must fit them all
    ds = sl.read_csv(tmp_path / "a.csv")
    assert not pa.types.is_integer(ds.schema.field("id").type)
    assert ds.count() == 2000


# ---------------------------------------------------------------- long cells and lines


LONG = 10 * 1024 * 1024


def test_a_csv_cell_of_10_mb_reads(tmp_path, runs):
    big = "x" * LONG
    (tmp_path / "a.csv").write_text(f"id,text\n1,small\n2,{big}\n3,\"quoted {big}\"\n4,end\n")
    got = sl.read_csv(tmp_path / "a.csv").to_arrow()
    assert got.column("id").to_pylist() == [1, 2, 3, 4]
    assert [len(v) for v in got.column("text").to_pylist()] == [5, LONG, LONG + 7, 3]


def test_a_csv_cell_of_10_mb_reads_beside_a_bad_line(tmp_path, runs):
    big = "y" * LONG
    rows = [f"{i},{i}" for i in range(2000)] + [f"2000,{big}", "2001,too,many", "2002,ok"]
    (tmp_path / "a.csv").write_text("id,text\n" + "\n".join(rows) + "\n")
    ds = sl.read_csv(tmp_path / "a.csv", schema=pa.schema([("id", pa.int64()), ("text", pa.string())]))
    got = ds.to_arrow()
    assert got.num_rows == 2002 and max(len(v) for v in got.column("text").to_pylist()) == LONG
    assert [r["row_position"] for r in _dead_letters(ds)] == [2003]


def test_an_ndjson_line_of_10_mb_reads(tmp_path, runs):
    big = "z" * LONG
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": 1, "text": big}) + "\n" + '{"id": 2, "text": "b"}\n')
    got = sl.read_json(tmp_path / "a.jsonl").to_arrow()
    assert got.column("id").to_pylist() == [1, 2] and len(got.column("text")[0].as_py()) == LONG


def test_a_csv_cell_of_10_mb_reads_without_a_header_by_a_given_schema(tmp_path, runs):
    big = "w" * LONG
    (tmp_path / "a.csv").write_text(f"1,small\n2,{big}\n")
    ds = sl.read_csv(tmp_path / "a.csv", has_header=False,
                     schema=pa.schema([("id", pa.int64()), ("text", pa.string())]))
    got = ds.to_arrow()
    assert got.column("id").to_pylist() == [1, 2] and len(got.column("text")[1].as_py()) == LONG
    assert ds.stats().bad_records == 0

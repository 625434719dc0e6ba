"""Inferred CSV types with a few misfit lines: a column gets the type Arrow would infer without them.

The oracle is Arrow's own inference on the same file with the misfit lines removed; the misfits must
be within the error budget (max_bad_records) of the sampled lines, and within 1% of a column's values.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from sluice import config
from sluice.io.text import CsvSource

KINDS = {
    "int": lambda i: str(i - 500),
    "hex and padded ints": lambda i: f"0x{i:x}" if i % 2 else f" {i}",
    "float": lambda i: f"{i / 8}" if i % 3 else str(i),
    "bool": lambda i: ("true", "False", "TRUE", "false")[i % 4],
    "date": lambda i: f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
    "time": lambda i: f"{i % 24:02d}:{i % 60:02d}:{i % 60:02d}",
    "timestamp": lambda i: f"2026-01-01 {i % 24:02d}:00:00",
    "timestamp ns": lambda i: f"2026-01-01T{i % 24:02d}:00:00.{i:03d}",
    "timestamp tz": lambda i: f"2026-01-01T{i % 24:02d}:00:00Z",
    "timestamp tz ns": lambda i: f"2026-01-01 {i % 24:02d}:00:00.5+01:00",
    "dates and timestamps": lambda i: "2026-01-02" if i % 5 else "2026-01-02 03:04:05",
}


def _write(path, values: list[str]) -> None:
    path.write_text("v,n\n" + "".join(f"{value},{i}\n" for i, value in enumerate(values)))


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_few_misfits_leave_the_type_arrow_infers_for_the_rest(tmp_path, kind):
    values = [KINDS[kind](i) for i in range(3000)]
    _write(tmp_path / "clean.csv", values)
    expected = pacsv.read_csv(tmp_path / "clean.csv").schema.field("v").type
    assert not pa.types.is_string(expected)
    values[100], values[2000] = "n/a?", '"oops, no"'
    _write(tmp_path / "dirty.csv", values)
    with config.scope(max_bad_records=0.001):
        assert CsvSource(str(tmp_path / "dirty.csv")).file_schema.field("v").type == expected
    with config.scope(max_bad_records=1):  # a count: one misfit allowed, and there are two
        assert pa.types.is_string(CsvSource(str(tmp_path / "dirty.csv")).file_schema.field("v").type)


def test_text_and_nulls_and_small_files_stay_as_arrow_infers_them(tmp_path):
    with config.scope(max_bad_records=0.01):
        names = [f"name {i}" for i in range(3000)]
        names[5] = "12"
        _write(tmp_path / "names.csv", names)
        assert pa.types.is_string(CsvSource(str(tmp_path / "names.csv")).file_schema.field("v").type)
        sparse = [""] * 3000
        sparse[7] = "x"  # the only value: no type "most values" fit but text
        _write(tmp_path / "sparse.csv", sparse)
        assert pa.types.is_string(CsvSource(str(tmp_path / "sparse.csv")).file_schema.field("v").type)
        tiny = [str(i) for i in range(50)] + ["x"]  # 1% of 51 rows rounds down to no misfit
        _write(tmp_path / "tiny.csv", tiny)
        assert pa.types.is_string(CsvSource(str(tmp_path / "tiny.csv")).file_schema.field("v").type)
        (tmp_path / "header.csv").write_text("v,n\n")
        assert CsvSource(str(tmp_path / "header.csv")).file_schema.names == ["v", "n"]


def test_a_sample_that_cuts_a_quoted_value_in_two_still_guesses(tmp_path):
    from sluice.io.text import SCHEMA_SAMPLE_BYTES
    line = '{i},"a value\nover two lines {i}"\n'
    count = SCHEMA_SAMPLE_BYTES // len(line.format(i=100_000)) + 1000
    (tmp_path / "quoted.csv").write_text("n,text\n" + "".join(line.format(i=i) for i in range(count)))
    schema = CsvSource(str(tmp_path / "quoted.csv")).file_schema
    assert schema.field("n").type == pa.int64() and pa.types.is_string(schema.field("text").type)

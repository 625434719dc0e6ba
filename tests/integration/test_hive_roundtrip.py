"""Hive-partitioned datasets read back exactly as they were written.

sluice records the partition columns' types in its commit manifest, so `k=007` reads back as the
string "007", not the double 7.0; a partition column's name is decoded as it was encoded (`../x`
is the directory `..%2Fx=...`); and a column that a file holds under the name of a partition key
keeps the file's values (as Spark reads it), never the path's.
"""

from __future__ import annotations

import datetime
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col

FORMATS = [("write_parquet", "read_parquet"), ("write_csv", "read_csv"), ("write_json", "read_json")]


def _rows(table: pa.Table, *names: str) -> list[tuple]:
    columns = [table[n].to_pylist() for n in names]
    return sorted(zip(*columns), key=repr)


@pytest.mark.parametrize("writer, reader", FORMATS)
def test_string_partition_values_that_look_like_numbers_read_back_as_strings(tmp_path, runner, writer, reader):
    out = str(tmp_path / "out")
    data = pa.table({"k": ["007", "7", "1e3", None], "v": [1, 2, 3, 4]})
    getattr(sl.from_arrow(data), writer)(out, partition_by=["k"])

    back = getattr(sl, reader)(out).to_arrow()
    assert pa.types.is_string(back.schema.field("k").type) or pa.types.is_large_string(back.schema.field("k").type)
    assert _rows(back, "k", "v") == _rows(data, "k", "v")
    assert getattr(sl, reader)(out).filter(col("k") == "007").to_arrow()["v"].to_pylist() == [1]


def test_partition_columns_keep_the_types_they_were_written_with(tmp_path, runner):
    out = str(tmp_path / "out")
    data = pa.table({"flag": [True, False], "day": [datetime.date(2026, 1, 2)] * 2,
                     "small": pa.array([1, 2], pa.int32()), "v": [1, 2]})
    sl.from_arrow(data).write_parquet(out, partition_by=["flag", "day", "small"])
    back = sl.read_parquet(out).to_arrow()
    assert {f.name: f.type for f in back.schema} == {"v": pa.int64(), "flag": pa.bool_(), "day": pa.date32(),
                                                     "small": pa.int32()}
    assert _rows(back, "flag", "day", "small", "v") == _rows(data, "flag", "day", "small", "v")


@pytest.mark.parametrize("writer, reader", FORMATS)
def test_a_partition_column_named_with_a_slash_round_trips(tmp_path, runner, writer, reader):
    out = str(tmp_path / "out")
    data = pa.table({"../x": ["a", "b/c"], "v": [1, 2]})
    getattr(sl.from_arrow(data), writer)(out, partition_by=["../x"])
    assert sorted(os.listdir(out))[:2] == ["..%2Fx=a", "..%2Fx=b%2Fc"]  # encoded on disk, inside the dataset
    back = getattr(sl, reader)(out).to_arrow()
    assert _rows(back, "../x", "v") == [("a", 1), ("b/c", 2)]


def test_a_data_column_named_like_a_partition_key_keeps_the_files_values(tmp_path, runner):
    parquet_dir = tmp_path / "pq"
    (parquet_dir / "day=1").mkdir(parents=True)
    pq.write_table(pa.table({"day": [5, 6], "v": [1, 2]}), parquet_dir / "day=1" / "f.parquet")
    csv_dir = tmp_path / "csv"
    (csv_dir / "day=1").mkdir(parents=True)
    (csv_dir / "day=1" / "f.csv").write_text("day,v\n5,1\n6,2\n")

    for back in (sl.read_parquet(str(parquet_dir)), sl.read_csv(str(csv_dir))):
        assert _rows(back.to_arrow(), "day", "v") == [(5, 1), (6, 2)]  # not day=1 from the path
        assert back.filter(col("day") == 5).to_arrow()["v"].to_pylist() == [1]


def test_a_log_written_before_partition_types_were_recorded_still_reads(tmp_path, runner):
    out = tmp_path / "out"
    sl.from_arrow(pa.table({"k": [7, 8], "v": [1, 2]})).write_parquet(str(out), partition_by=["k"])
    for name in os.listdir(out):
        if name.startswith("_sluice_manifest_"):  # as an older sluice wrote it
            raw = json.loads((out / name).read_text())
            raw.pop("partition_schema"), raw.pop("partition_types")
            (out / name).write_text(json.dumps(raw))
    back = sl.read_parquet(str(out)).to_arrow()
    assert back.schema.field("k").type == pa.int64()  # inferred from the values, as before
    assert _rows(back, "k", "v") == [(7, 1), (8, 2)]

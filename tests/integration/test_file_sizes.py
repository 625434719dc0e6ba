"""Right-sized output files: a write joins each partition's small files at commit up to target_file_size,
on both runners and for every format, keeping every row once and the dataset's order."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col
from sluice.io.coalesce import coalesced_groups

ROWS = 167_000
DAYS = 8


@pytest.fixture
def events():
    ids = np.arange(ROWS)
    return pa.table({"id": ids, "date": [f"2026-12-0{1 + i % DAYS}" for i in ids], "score": ids * 0.5 + 0.25})


def identity(batch):
    return batch


def test_a_partitioned_write_of_many_small_blocks_writes_a_file_per_partition(runner, events, tmp_path):
    ds = sl.from_arrow(events).map_batches(identity, batch_size=10_000)
    many = ds.write_parquet(str(tmp_path / "unjoined"), partition_by=["date"], target_file_size=None)
    assert len(many.files) == 17 * DAYS  # one file per block and partition: what a user saw
    joined = ds.write_parquet(str(tmp_path / "joined"), partition_by=["date"])
    assert len(joined.files) == DAYS
    assert len(list((tmp_path / "joined").rglob("*.parquet"))) == DAYS
    back = sl.read_parquet(str(tmp_path / "joined")).to_arrow()
    assert back.num_rows == ROWS and sorted(back["id"].to_pylist()) == list(range(ROWS))
    assert joined.rows == ROWS


def test_files_stay_under_the_target_and_keep_the_order_of_a_sorted_dataset(runner, events, tmp_path):
    ds = sl.from_arrow(events).sort("id", descending=True).map_batches(identity, batch_size=5_000)
    small = ds.write_parquet(str(tmp_path / "parts"), target_file_size=None)
    target = 3 * max(small.bytes // len(small.files), 1)  # about three blocks' files per file
    result = ds.write_parquet(str(tmp_path / "sized"), target_file_size=target)
    assert 1 < len(result.files) < len(small.files)
    assert all(pq.ParquetFile(path).metadata.serialized_size > 0 for path in result.files)
    sizes = [pq.ParquetFile(path).metadata.num_rows for path in result.files]
    assert sum(sizes) == ROWS
    back = sl.read_parquet(str(tmp_path / "sized")).to_arrow()["id"].to_pylist()
    assert back == list(range(ROWS - 1, -1, -1))  # files joined in block order: still sorted


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_text_formats_join_their_files_too(runner, events, tmp_path, fmt):
    ds = sl.from_arrow(events.slice(0, 40_000)).map_batches(identity, batch_size=4_000)
    result = getattr(ds, f"write_{fmt}")(str(tmp_path / fmt), partition_by=["date"])
    assert len(result.files) == DAYS
    reader = sl.read_csv if fmt == "csv" else sl.read_json
    back = reader(str(tmp_path / fmt)).filter(col("id") >= 0).to_arrow()
    assert back.num_rows == 40_000 and sorted(back["id"].to_pylist()) == list(range(40_000))


def test_groups_are_consecutive_files_of_one_directory_under_the_target():
    written = [("d=1/a", 1, 40), ("d=2/b", 1, 40), ("d=1/c", 1, 40), ("d=1/d", 1, 40), ("d=2/e", 1, 100),
               ("f", 1, 10), ("g", 1, 95)]
    assert coalesced_groups(written, 100) == [[0, 2], [1], [3], [4], [5], [6]]
    assert coalesced_groups(written, 1000) == [[0, 2, 3], [1, 4], [5, 6]]

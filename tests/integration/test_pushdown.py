"""Pushdown reaches the scan: counted through the filesystem, not through a mock.

Every read goes through a pyarrow `PyFileSystem` whose handler delegates to the local
filesystem and records each file it opens and every byte read from those files. The tests
then assert what a scan with a partition filter, a narrow column selection, a selective
row-group filter or a limit actually touched.

Building the dataset can open the first file's footer once to learn the schema (with
`filter=`, `read_parquet()` type-checks the predicate against the schema at once). That is
schema discovery, not the scan: the tests reset the counter after building the dataset, so
only the action's opens and bytes are counted.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col

# ---------------------------------------------------------------- the counting filesystem

class Counter:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.opened: list[str] = []
            self.bytes_read = 0

    def opened_file(self, path: str):
        with self._lock:
            self.opened.append(path)

    def add_bytes(self, n: int):
        with self._lock:
            self.bytes_read += n


class CountingFile:
    """A file object over the local file that counts the bytes handed out."""

    def __init__(self, inner: pa.NativeFile, counter: Counter):
        self._inner, self._counter = inner, counter

    def read(self, nbytes=None):
        data = self._inner.read() if nbytes is None or nbytes < 0 else self._inner.read(nbytes)
        self._counter.add_bytes(len(data))
        return data

    def read_at(self, nbytes, offset):
        data = self._inner.read_at(nbytes, offset)
        self._counter.add_bytes(len(data))
        return data

    def readinto(self, buffer):
        n = self._inner.readinto(buffer)
        self._counter.add_bytes(n)
        return n

    def seek(self, position, whence=0):
        return self._inner.seek(position, whence)

    def tell(self):
        return self._inner.tell()

    def size(self):
        return self._inner.size()

    def close(self):
        self._inner.close()

    @property
    def closed(self):
        return self._inner.closed

    def readable(self):
        return True

    def seekable(self):
        return True

    def writable(self):
        return False


class CountingHandler(pafs.FileSystemHandler):
    """Delegates to LocalFileSystem; records every file opened for reading, and bytes read."""

    def __init__(self, counter: Counter):
        self.local = pafs.LocalFileSystem()
        self.counter = counter

    def __eq__(self, other):
        return isinstance(other, CountingHandler) and other.counter is self.counter

    def __ne__(self, other):
        return not self == other

    def get_type_name(self):
        return "counting"

    def normalize_path(self, path):
        return self.local.normalize_path(path)

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.local.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError("refusing to delete the root directory's contents")

    def delete_file(self, path):
        self.local.delete_file(path)

    def move(self, src, dest):
        self.local.move(src, dest)

    def copy_file(self, src, dest):
        self.local.copy_file(src, dest)

    def open_input_stream(self, path):
        self.counter.opened_file(path)
        return pa.PythonFile(CountingFile(self.local.open_input_stream(path), self.counter), mode="r")

    def open_input_file(self, path):
        self.counter.opened_file(path)
        return pa.PythonFile(CountingFile(self.local.open_input_file(path), self.counter), mode="r")

    def open_output_stream(self, path, metadata):
        return self.local.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.local.open_append_stream(path, metadata=metadata)


@pytest.fixture
def counting():
    counter = Counter()
    return counter, pafs.PyFileSystem(CountingHandler(counter))


def _sorted(table: pa.Table, *keys: str) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in keys])


# ---------------------------------------------------------------- partition pruning

@pytest.fixture(scope="module")
def hive_200(tmp_path_factory):
    """200 files: 50 values of `day` x 4 files each, each file 20 rows."""
    root = tmp_path_factory.mktemp("hive200")
    rng = np.random.default_rng(0)
    expected = []
    for day in range(50):
        directory = root / f"day={day}"
        directory.mkdir()
        for part in range(4):
            table = pa.table({"id": np.arange(20, dtype=np.int64) + 1000 * day + 100 * part,
                              "value": rng.normal(size=20)})
            pq.write_table(table, directory / f"part-{part}.parquet")
            expected.append(table.append_column("day", pa.array([day] * 20, pa.int64())))
    return str(root), pa.concat_tables(expected)


def test_partition_filter_opens_only_matching_files(hive_200, counting):
    root, everything = hive_200
    counter, fs = counting
    ds = sl.read_parquet(root, filesystem=fs, filter=col("day") == 17)
    # Building the dataset opened the first file's footer (schema discovery for the filter's type check).
    assert len(counter.opened) <= 1
    counter.reset()

    result = ds.to_arrow()

    expected_files = {f"{root}/day=17/part-{p}.parquet" for p in range(4)}
    assert set(counter.opened) == expected_files, sorted(set(counter.opened))
    assert result.num_rows == 80
    expected = everything.filter(pc.field("day") == 17)
    assert _sorted(result, "id").equals(_sorted(expected.select(result.column_names), "id"))


def test_partition_filter_with_range_opens_only_matching_partitions(hive_200, counting):
    root, everything = hive_200
    counter, fs = counting
    ds = sl.read_parquet(root, filesystem=fs).filter((col("day") >= 10) & (col("day") < 13)).select("id", "day")
    counter.reset()

    result = ds.to_arrow()

    opened_days = {path.split("day=")[1].split("/")[0] for path in counter.opened}
    assert opened_days == {"10", "11", "12"}
    assert len(set(counter.opened)) == 12
    expected = everything.filter((pc.field("day") >= 10) & (pc.field("day") < 13)).select(["id", "day"])
    assert _sorted(result, "id").equals(_sorted(expected, "id"))


def test_filter_on_data_column_does_not_prune_partitions(hive_200, counting):
    # Negative case: a filter on a data column cannot rule out a partition by its path.
    root, _ = hive_200
    counter, fs = counting
    ds = sl.read_parquet(root, filesystem=fs, filter=col("id") == 17302)
    counter.reset()
    result = ds.to_arrow()
    assert len(set(counter.opened)) == 200
    assert result.column("id").to_pylist() == [17302]
    assert result.column("day").to_pylist() == [17]


# ---------------------------------------------------------------- column pruning

@pytest.fixture(scope="module")
def wide_file(tmp_path_factory):
    """16 float64 columns of random data, 200k rows: column chunks dwarf the footer."""
    path = tmp_path_factory.mktemp("wide") / "wide.parquet"
    rng = np.random.default_rng(1)
    table = pa.table({f"c{i:02d}": rng.random(200_000) for i in range(16)})
    pq.write_table(table, path, compression="none", row_group_size=50_000)
    return str(path), table


def _bytes_for(counter, action):
    counter.reset()
    result = action()
    return counter.bytes_read, result


def test_selecting_two_columns_reads_far_fewer_bytes(wide_file, counting):
    path, table = wide_file
    counter, fs = counting
    full = sl.read_parquet(path, filesystem=fs)
    narrow = sl.read_parquet(path, filesystem=fs).select("c03", "c11")

    full_bytes, full_result = _bytes_for(counter, full.to_arrow)
    narrow_bytes, narrow_result = _bytes_for(counter, narrow.to_arrow)

    assert full_result.equals(table)
    assert narrow_result.equals(table.select(["c03", "c11"]))
    assert full_bytes >= os.path.getsize(path) * 0.9, "the counter must see the full read"
    assert narrow_bytes < 0.3 * full_bytes, (narrow_bytes, full_bytes)


def test_columns_argument_and_filter_column_are_read(wide_file, counting):
    # The filter's column must be read even though it is not selected; the rest are not.
    path, table = wide_file
    counter, fs = counting
    full_bytes, _ = _bytes_for(counter, sl.read_parquet(path, filesystem=fs).to_arrow)
    ds = sl.read_parquet(path, filesystem=fs, columns=["c00"]).filter(col("c00") < 0.5)
    ds2 = sl.read_parquet(path, filesystem=fs).filter(col("c05") < 0.5).select("c00")

    one_bytes, result = _bytes_for(counter, ds.to_arrow)
    two_bytes, result2 = _bytes_for(counter, ds2.to_arrow)

    assert result.column_names == ["c00"]
    assert result.num_rows == pc.sum(pc.less(table["c00"], 0.5)).as_py()
    assert result2.column("c00").equals(table.filter(pc.less(table["c05"], 0.5)).column("c00"))
    assert one_bytes < 0.15 * full_bytes, (one_bytes, full_bytes)
    assert two_bytes < 0.25 * full_bytes, (two_bytes, full_bytes)


# ---------------------------------------------------------------- row-group pruning

@pytest.fixture(scope="module")
def sorted_file(tmp_path_factory):
    """One file, 100 row groups, sorted by `key`, so each row group covers a narrow key range."""
    path = tmp_path_factory.mktemp("sorted") / "sorted.parquet"
    n = 200_000
    rng = np.random.default_rng(2)
    table = pa.table({"key": np.arange(n, dtype=np.int64),
                      "a": rng.random(n), "b": rng.random(n), "c": rng.integers(0, 1 << 40, n)})
    pq.write_table(table, path, row_group_size=2_000, compression="none")
    assert pq.ParquetFile(path).num_row_groups == 100
    return str(path), table


def test_row_group_statistics_prune_a_selective_filter(sorted_file, counting):
    path, table = sorted_file
    counter, fs = counting
    full_bytes, full = _bytes_for(counter, sl.read_parquet(path, filesystem=fs).to_arrow)
    ds = sl.read_parquet(path, filesystem=fs, filter=(col("key") >= 123_500) & (col("key") < 123_600))
    selective_bytes, result = _bytes_for(counter, ds.to_arrow)

    assert full.num_rows == table.num_rows
    assert result.column("key").to_pylist() == list(range(123_500, 123_600))
    assert result.equals(table.slice(123_500, 100))
    assert selective_bytes < 0.1 * full_bytes, (selective_bytes, full_bytes)


def test_row_group_pruning_after_a_projection(sorted_file, counting):
    # The filter is written after a rename; pushdown rewrites it to the scan column.
    path, _ = sorted_file
    counter, fs = counting
    full_bytes, _ = _bytes_for(counter, sl.read_parquet(path, filesystem=fs).to_arrow)
    ds = sl.read_parquet(path, filesystem=fs).rename({"key": "k"}).filter(col("k").between(5_000, 5_009))
    selective_bytes, result = _bytes_for(counter, ds.to_arrow)

    assert result.column("k").to_pylist() == list(range(5_000, 5_010))
    assert selective_bytes < 0.1 * full_bytes, (selective_bytes, full_bytes)


# ---------------------------------------------------------------- limit pushdown

@pytest.fixture(scope="module")
def fifty_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fifty")
    for i in range(50):
        pq.write_table(pa.table({"file": [i] * 100, "row": list(range(100))}), root / f"part-{i:03d}.parquet")
    return str(root)


def test_limit_opens_few_files(fifty_files, counting):
    counter, fs = counting
    ds = sl.read_parquet(fifty_files, filesystem=fs)
    counter.reset()

    result = ds.limit(5).to_arrow()

    assert result.num_rows == 5
    assert result.column("file").to_pylist() == [0] * 5
    assert result.column("row").to_pylist() == [0, 1, 2, 3, 4]
    assert len(set(counter.opened)) < 10, sorted(set(counter.opened))


def test_limit_after_projection_opens_few_files(fifty_files, counting):
    counter, fs = counting
    ds = sl.read_parquet(fifty_files, filesystem=fs).with_columns(twice=col("row") * 2).select("twice")
    counter.reset()
    result = ds.limit(3).to_arrow()
    assert result.column("twice").to_pylist() == [0, 2, 4]
    assert len(set(counter.opened)) < 10, sorted(set(counter.opened))


def test_limit_above_selective_filter_is_still_right(fifty_files, counting):
    # A limit must not be pushed below the filter: the first 2 rows *after* filtering.
    counter, fs = counting
    ds = sl.read_parquet(fifty_files, filesystem=fs).filter(col("file") == 42).limit(2)
    counter.reset()
    result = ds.to_arrow()
    assert result.to_pylist() == [{"file": 42, "row": 0}, {"file": 42, "row": 1}]


def test_partition_pruning_survives_constant_folding(hive_200, counting):
    # `lit(True) & p` folds to `p`; the folded predicate must still prune partitions.
    root, _ = hive_200
    counter, fs = counting
    ds = sl.read_parquet(root, filesystem=fs, filter=sl.lit(True) & (col("day") == 17))
    counter.reset()
    result = ds.to_arrow()
    assert result.num_rows == 80
    assert set(counter.opened) == {f"{root}/day=17/part-{p}.parquet" for p in range(4)}, len(set(counter.opened))


# ---------------------------------------------------------------- files that store strings as string_view

@pytest.fixture(scope="module")
def view_file(tmp_path_factory):
    """tpchgen-cli's layout: strings stored as string_view, many row groups sorted by a string key, large
    enough that a small budget splits the file into read tasks by row group (and prunes them)."""
    path = tmp_path_factory.mktemp("views") / "views.parquet"
    n = 400_000
    keys = [f"key-{i:07d}" for i in range(n)]
    table = pa.table({"k": pa.array(keys, pa.string_view()), "tag": pa.array(["MAIL", "SHIP"] * (n // 2), pa.string_view()),
                      "pad": pa.array([f"{i:032d}" for i in range(n)], pa.string_view()),
                      "v": np.arange(n, dtype=np.int64)})
    pq.write_table(table, path, row_group_size=4_000, compression="none")
    assert pq.read_schema(path).field("k").type == pa.string_view()
    return str(path), table


@pytest.mark.parametrize("predicate, sql", [
    (col("k") == "key-0123456", "k = 'key-0123456'"),
    ((col("k") >= "key-0390000") & (col("tag") == "MAIL"), "k >= 'key-0390000' AND tag = 'MAIL'"),
    (col("k").between("key-0001000", "key-0001999"), "k BETWEEN 'key-0001000' AND 'key-0001999'"),
    (col("tag").is_in(["SHIP"]) & (col("k") < "key-0000100"), "tag IN ('SHIP') AND k < 'key-0000100'"),
])
def test_filters_on_string_view_columns_prune_row_groups_instead_of_failing(view_file, runner, predicate, sql):
    path, table = view_file
    import duckdb
    expected = duckdb.sql(f"SELECT sum(v), count(*), max(pad) FROM read_parquet('{path}') WHERE {sql}").fetchall()[0]
    with sl.config.scope(memory_budget="48MiB", fuse_fraction=0):  # read tasks of a few row groups each
        ds = sl.read_parquet(path, filter=predicate).agg(s=col("v").sum(), n=sl.count(), p=col("pad").max())
        got = ds.to_arrow().to_pylist()[0]
    assert (got["s"], got["n"], got["p"]) == expected
    # the file was split by row group, and those the key range rules out were pruned by their statistics
    assert ds.stats().input_bytes < os.path.getsize(path) * 0.2

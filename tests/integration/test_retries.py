"""Transient I/O errors are retried with backoff; deterministic ones and user code errors are not.

Every test reads or writes through a pyarrow `PyFileSystem` whose handler delegates to a real
filesystem (local disk, or S3 on moto's server) and fails the first N opens of each file with
a transient error (alternately `ConnectionResetError` and a plain `OSError`, as a network
filesystem would). The job must give the same rows as without failures, and `stats().retries`
must count exactly the failures injected: each one was retried once, none was swallowed and
none was fatal.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import assert_same, moto_s3, q, sqlpath

import sluice as sl
from sluice import col
from sluice.errors import TransientError
from sluice.io.retry import backoff_s, is_transient, retrying

ATTEMPTS = 3


class Flaky(pafs.FileSystemHandler):
    """Delegates to `inner`; fails the first `fail_reads` opens for reading of each path, and the
    first `fail_writes` opens for writing and `fail_moves` moves of each path.

    Its counts live in a small JSON file, locked while updated, so copies of it in other processes
    (the Ray runner reads and writes in its workers) fail and count as one.
    """

    def __init__(self, inner: pafs.FileSystem):
        self.inner = inner
        self._state = os.path.join(tempfile.mkdtemp(prefix="sluice-flaky-"), "state.json")
        self.arm()

    @contextlib.contextmanager
    def _locked(self):
        with open(self._state + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.load(open(self._state)) if os.path.exists(self._state) else {}
                yield state
                with open(self._state + ".tmp", "w") as f:
                    json.dump(state, f)
                os.replace(self._state + ".tmp", self._state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _get(self, name: str):
        with self._locked() as state:
            return state[name]

    def arm(self, fail_reads: int = 0, fail_writes: int = 0, fail_moves: int = 0, only: str | None = None):
        with self._locked() as state:
            state.clear()
            state.update(fail_reads=fail_reads, fail_writes=fail_writes, fail_moves=fail_moves, only=only, seen={},
                         injected=0, opened=[])

    injected = property(lambda self: self._get("injected"))
    opened = property(lambda self: self._get("opened"))

    def _maybe_fail(self, kind: str, path: str):
        with self._locked() as state:
            if kind == "read":
                state["opened"].append(path)
            limit = state[f"fail_{kind}s"]
            if limit <= 0 or (state["only"] is not None and state["only"] not in path):
                return
            n = state["seen"].get(f"{kind} {path}", 0)
            state["seen"][f"{kind} {path}"] = n + 1
            if n >= limit:
                return
            state["injected"] += 1
        if n % 2 == 0:
            raise ConnectionResetError(errno.ECONNRESET, f"injected: connection reset by peer ({path})")
        raise OSError(f"injected: request to storage failed ({path})")

    def __eq__(self, other):
        return isinstance(other, Flaky) and other._state == self._state

    def __ne__(self, other):
        return not self == other

    def get_type_name(self):
        return "flaky"

    def normalize_path(self, path):
        return self.inner.normalize_path(path)

    def get_file_info(self, paths):
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.inner.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError("refusing to delete the root directory's contents")

    def delete_file(self, path):
        self.inner.delete_file(path)

    def move(self, src, dest):
        self._maybe_fail("move", src)
        self.inner.move(src, dest)

    def copy_file(self, src, dest):
        self.inner.copy_file(src, dest)

    def open_input_stream(self, path):
        self._maybe_fail("read", path)
        return self.inner.open_input_stream(path)

    def open_input_file(self, path):
        self._maybe_fail("read", path)
        return self.inner.open_input_file(path)

    def open_output_stream(self, path, metadata):
        self._maybe_fail("write", path)
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.inner.open_append_stream(path, metadata=metadata)


@pytest.fixture
def fast_retries(runner):
    sl.configure(retry_attempts=ATTEMPTS, retry_backoff_s=0.001, on_error="raise")
    return ATTEMPTS


def _events(n: int = 6_000) -> pa.Table:
    rng = np.random.default_rng(4)
    return pa.table({
        "id": pa.array(np.arange(n), pa.int64()),
        "day": pa.array(np.arange(n) % 3, pa.int64()),
        "amount": pa.array(rng.integers(0, 1000, n), pa.int64()),
        "tag": pa.array(np.array(["a", "b", "c", "d"])[rng.integers(0, 4, n)]),
    })


def _write_files(root, table: pa.Table, files: int) -> list[str]:
    os.makedirs(root, exist_ok=True)
    step = -(-table.num_rows // files)
    paths = []
    for i in range(files):
        path = os.path.join(str(root), f"part-{i}.parquet")
        pq.write_table(table.slice(i * step, step), path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- the policy itself


def test_classification_of_errors():
    names = ("OSError", "TimeoutError", "ConnectionError")
    assert is_transient(ConnectionResetError(errno.ECONNRESET, "reset"), names)
    assert is_transient(TimeoutError("slow"), names)
    assert is_transient(OSError("AWS Error NETWORK_CONNECTION during GetObject operation: curlCode: 56"), names)
    assert is_transient(OSError("AWS Error UNKNOWN (HTTP status 503) during PutObject operation"), names)
    assert is_transient(OSError(errno.EIO, "I/O error"), names)
    # the storage's state, a decode failure, sluice's own decisions and user code are not transient
    assert not is_transient(FileNotFoundError(errno.ENOENT, "gone"), names)
    assert not is_transient(PermissionError(errno.EACCES, "no"), names)
    assert not is_transient(OSError(errno.ENOSPC, "disk full"), names)
    assert not is_transient(OSError("Couldn't deserialize thrift: TProtocolException: Invalid data"), names)
    assert not is_transient(OSError("Corrupt snappy compressed data."), names)
    assert not is_transient(OSError("AWS Error ACCESS_DENIED during HeadObject operation"), names)
    assert not is_transient(sl.CorruptFileError("bad file"), names)
    assert not is_transient(TransientError("gave up already"), names)
    assert not is_transient(RuntimeError("user code"), names)
    # the list is configurable; naming a deterministic subclass opts it in
    assert not is_transient(TimeoutError("slow"), ("ConnectionError",))
    assert is_transient(FileNotFoundError(errno.ENOENT, "eventually consistent"), names + ("FileNotFoundError",))


def test_backoff_is_exponential_with_full_jitter(fast_retries):
    import random

    from sluice import config
    conf = config.current()
    rng = random.Random(1)
    for retry in (1, 2, 3, 4):
        samples = [backoff_s(conf, retry, rng) for _ in range(200)]
        ceiling = conf.retry_backoff_s * 2 ** (retry - 1)
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8 and min(samples) < ceiling * 0.2  # spread over the whole range

    slept = []
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        return "done"

    class Stats:
        retries = 0

        def add_retry(self, error):
            self.retries += 1

    stats = Stats()
    assert retrying(flaky, conf, stats, "reading x", sleep=slept.append) == "done"
    assert len(calls) == 3 and stats.retries == 2 and len(slept) == 2


# ---------------------------------------------------------------- local disk behind a flaky wrapper


def test_flaky_parquet_reads_succeed_and_count_retries(tmp_path, fast_retries, duck):
    table = _events()
    root = tmp_path / "events"
    paths = _write_files(root, table, files=6)
    flaky = Flaky(pafs.LocalFileSystem())
    ds = (sl.read_parquet(str(root), filesystem=pafs.PyFileSystem(flaky))
          .filter(col("amount") > 100).with_columns(double=col("amount") * 2))
    expected = ds.to_arrow()  # the same job without failures (it also warms the schema and footers)
    assert ds.stats().retries == 0

    flaky.arm(fail_reads=2)
    actual = ds.to_arrow()

    assert actual.equals(expected)
    assert_same(actual, q(duck, f"SELECT *, amount * 2 AS double FROM read_parquet({sqlpath(str(root) + '/*.parquet')}) "
                                "WHERE amount > 100"))
    assert flaky.injected == 2 * len(paths)
    stats = ds.stats()
    assert stats.retries == flaky.injected
    assert any("connection reset" in e for e in stats.retry_errors)


def test_flaky_csv_and_json_reads_succeed(tmp_path, fast_retries):
    table = _events(2_000).drop_columns(["tag"])
    flaky = Flaky(pafs.LocalFileSystem())
    fs = pafs.PyFileSystem(flaky)
    sl.from_arrow(table).repartition(4).write_csv(str(tmp_path / "csv"), target_file_size=None)  # four files
    sl.from_arrow(table).repartition(4).write_json(str(tmp_path / "json"), target_file_size=None)
    for reader, where in ((sl.read_csv, "csv"), (sl.read_json, "json")):
        ds = reader(str(tmp_path / where), filesystem=fs).filter(col("day") == 1)
        expected = ds.to_arrow()
        flaky.arm(fail_reads=1)
        actual = ds.to_arrow()
        assert actual.sort_by("id").equals(expected.sort_by("id"))
        assert actual.num_rows == table.filter(pa.compute.equal(table["day"], 1)).num_rows
        assert flaky.injected == 4
        assert ds.stats().retries == 4


def test_persistent_failure_raises_transient_error_after_the_attempts(tmp_path, fast_retries):
    paths = _write_files(tmp_path / "events", _events(), files=3)
    flaky = Flaky(pafs.LocalFileSystem())
    ds = sl.read_parquet(str(tmp_path / "events"), filesystem=pafs.PyFileSystem(flaky))
    ds.count()
    flaky.arm(fail_reads=1_000, only="part-1")

    with pytest.raises(TransientError) as info:
        ds.to_arrow()

    message = str(info.value)
    assert paths[1] in message and f"{ATTEMPTS} times" in message and "retry_attempts" in message
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.attempts == ATTEMPTS
    # the file was tried exactly ATTEMPTS times: the task-level retry does not retry a TransientError
    assert flaky.injected == ATTEMPTS
    assert ds.stats().retries == ATTEMPTS - 1


def test_corrupt_file_is_not_retried(tmp_path, fast_retries):
    _write_files(tmp_path / "events", _events(), files=2)
    bad = tmp_path / "events" / "part-1.parquet"
    data = bytearray(bad.read_bytes())
    data[4:40] = b"\0" * 36  # the first page header: "Couldn't deserialize thrift", an OSError from Arrow
    bad.write_bytes(bytes(data))
    flaky = Flaky(pafs.LocalFileSystem())
    ds = sl.read_parquet(str(tmp_path / "events"), filesystem=pafs.PyFileSystem(flaky))
    flaky.arm()

    with pytest.raises(sl.CorruptFileError, match="part-1.parquet"):
        ds.to_arrow()

    assert ds.stats().retries == 0
    assert flaky.opened.count(str(bad)) <= 2  # footer and data, once each: no retry


def test_user_code_errors_are_not_retried(tmp_path, fast_retries, runner):
    calls = []

    def explode(batch):
        calls.append(1)
        raise ConnectionResetError(errno.ECONNRESET, "user code raising an OSError is still user code")

    ds = sl.range(100).map_batches(explode, schema=pa.schema([("id", pa.int64())]), compute="threads")
    with pytest.raises(sl.UserCodeError):
        ds.to_arrow()
    if runner == "local":  # `calls` fills where the function runs: in this process only on the local runner
        assert len(calls) == 1
    assert ds.stats().retries == 0


def test_flaky_writes_and_publishing_are_retried(tmp_path, fast_retries, duck):
    table = _events()
    flaky = Flaky(pafs.LocalFileSystem())
    fs = pafs.PyFileSystem(flaky)
    out = str(tmp_path / "out")
    flaky.arm(fail_writes=1, fail_moves=1)
    ds = sl.from_arrow(table).repartition(3)
    result = ds.write_parquet(out, partition_by=["day"], filesystem=fs)

    assert result.rows == table.num_rows
    assert flaky.injected > 9  # 9 staged files, their moves, the manifest and _SUCCESS
    assert ds.stats().retries == flaky.injected
    flaky.arm()
    back = sl.read_parquet(out, filesystem=fs).to_arrow()
    assert_same(back.select(table.column_names), table)
    assert_same(q(duck, f"SELECT id, day, amount, tag FROM read_parquet({sqlpath(out + '/*/*.parquet')}, "
                        "hive_partitioning = true)"), table)
    assert not os.path.exists(os.path.join(out, "_sluice_staging"))


# ---------------------------------------------------------------- S3 (moto) behind a flaky wrapper


@pytest.fixture(scope="module")
def s3():
    with moto_s3("flaky") as (fs, _):
        yield fs


def test_flaky_s3_read_and_write(s3, fast_retries, runner):
    table = _events(3_000)
    for i in range(4):
        with s3.open_output_stream(f"flaky/events/part-{i}.parquet") as out:
            pq.write_table(table.slice(i * 750, 750), out)
    flaky = Flaky(s3)
    fs = pafs.PyFileSystem(flaky)
    ds = sl.read_parquet("flaky/events", filesystem=fs).filter(col("tag") != "a")
    expected = ds.to_arrow()

    flaky.arm(fail_reads=2)
    actual = ds.to_arrow()
    assert actual.equals(expected)
    assert flaky.injected == 8
    assert ds.stats().retries == 8

    flaky.arm(fail_writes=1, fail_moves=1)
    writer = sl.read_parquet("flaky/events", filesystem=s3).with_columns(k=col("id") % 2)
    out = f"flaky/out-{runner}"  # the bucket is shared by the module's tests
    result = writer.write_parquet(out, partition_by=["k"], filesystem=fs)
    assert result.rows == table.num_rows
    assert writer.stats().retries == flaky.injected > 0
    back = sl.read_parquet(out, filesystem=s3).to_arrow()
    assert sorted(back["id"].to_pylist()) == list(range(3_000))
    names = [i.path for i in s3.get_file_info(pafs.FileSelector(out, recursive=True))]
    assert f"{out}/_SUCCESS" in names and not any("_sluice_staging" in n for n in names)

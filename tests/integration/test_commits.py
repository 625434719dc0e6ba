"""Writes commit exactly once: a crash shows nothing new, a re-commit duplicates nothing.

Crashes are real where it matters: a child process writes with SLUICE_TEST_CRASH_AT set, and
the sink calls os._exit at that point of the commit, so no cleanup runs. The in-process
variants replace the crash hook with an exception and switch off the commit's roll-back, which
leaves the destination exactly as a dead process would. Readers are sluice's (which follow the
commit log) and, where the files on disk matter, DuckDB (which sees every file).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import assert_same, moto_s3, q, sqlpath

import sluice as sl
from sluice import col, lit
from sluice.io import sinks
import signal

from sluice.io.commit import collect_dataset_garbage
from sluice.io.files import resolve_files
from sluice.io.sinks import ParquetSink

ROWS = 1_000


def _data(start: int = 0, n: int = ROWS) -> sl.Dataset:
    return sl.range(start, start + n).with_columns(day=col("id") % 3, amount=col("id") * 10).repartition(4)


def _ids(path, **kwargs) -> list[int]:
    return sorted(sl.read_parquet(str(path), **kwargs).to_arrow()["id"].to_pylist())


class Crash(Exception):
    pass


@pytest.fixture
def crash_at(monkeypatch):
    """In-process crash: raise at the named commit point, with the commit's roll-back switched off."""
    def arm(point: str):
        def crash(name):
            if name == point:
                raise Crash(point)
        monkeypatch.setattr(sinks, "crash_point", crash)
        monkeypatch.setattr(sinks.FileSink, "_roll_back", lambda self, published: None)
        monkeypatch.setattr(sinks.FileSink, "abort", lambda self: None)
    return arm


def _data_files(root) -> list[str]:
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith("_")]
        found += [os.path.join(directory, f) for f in files if not f.startswith(("_", "."))]
    return sorted(found)


# ---------------------------------------------------------------- crashes


CHILD = textwrap.dedent("""
    import os, sys
    import pyarrow.fs as pafs
    import sluice as sl
    from sluice import col
    out, mode, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fs = None
    if os.environ.get("TEST_S3_ENDPOINT"):
        fs = pafs.S3FileSystem(endpoint_override=os.environ["TEST_S3_ENDPOINT"], access_key="test",
                               secret_key="test", region="us-east-1", scheme="http")
    data = sl.range(start, start + 1000).with_columns(day=col("id") % 3, amount=col("id") * 10).repartition(4)
    data.write_parquet(out, mode=mode, partition_by=["day"], filesystem=fs)
""")


def _crash_child(tmp_path, out: str, mode: str, start: int, point: str, extra_env: dict | None = None):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, SLUICE_TEST_CRASH_AT=point, SLUICE_NUM_THREADS="2", **(extra_env or {}))
    run = subprocess.run([sys.executable, str(script), out, mode, str(start)], env=env, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]


def test_killed_first_write_leaves_nothing_visible(tmp_path, runner, duck):
    out = tmp_path / "out"
    _crash_child(tmp_path, str(out), "error", 0, "mid-publish")

    assert len(_data_files(out)) >= 1  # a file was published before the crash...
    with pytest.raises(sl.SourceNotFoundError, match="no committed data"):
        sl.read_parquet(str(out))  # ...but sluice's readers see no dataset
    # the next write (mode='error' included) goes through, and only its rows are visible
    _data(5_000).write_parquet(str(out), partition_by=["day"])
    assert _ids(out) == list(range(5_000, 6_000))


def test_killed_append_shows_only_committed_rows(tmp_path, runner):
    out = tmp_path / "out"
    _data().write_parquet(str(out), partition_by=["day"])
    _crash_child(tmp_path, str(out), "append", 10_000, "before-manifest")

    assert _ids(out) == list(range(ROWS))
    assert sorted(sl.read_parquet(str(out / "day=1")).to_arrow()["id"].to_pylist()) == list(range(1, ROWS, 3))
    _data(20_000).write_parquet(str(out), partition_by=["day"], mode="append")
    assert _ids(out) == list(range(ROWS)) + list(range(20_000, 21_000))


@pytest.mark.parametrize("point", ["before-commit", "mid-publish", "before-manifest"])
@pytest.mark.parametrize("mode", ["append", "overwrite", "overwrite-partitions"])
def test_crash_before_the_manifest_keeps_the_previous_state(tmp_path, runner, crash_at, point, mode):
    out = tmp_path / "out"
    _data().write_parquet(str(out), partition_by=["day"])
    crash_at(point)
    with pytest.raises(Crash):
        _data(10_000).filter(col("day") == 1).write_parquet(str(out), partition_by=["day"], mode=mode)

    assert _ids(out) == list(range(ROWS))
    assert sorted(sl.read_parquet(str(out / "day=1")).to_arrow()["id"].to_pylist()) == list(range(1, ROWS, 3))


def test_crash_after_the_manifest_is_committed(tmp_path, runner, crash_at):
    out = tmp_path / "out"
    _data().write_parquet(str(out), partition_by=["day"])
    crash_at("after-manifest")
    with pytest.raises(Crash):
        _data(10_000).write_parquet(str(out), partition_by=["day"], mode="append")
    assert _ids(out) == list(range(ROWS)) + list(range(10_000, 11_000))


def test_failed_write_leaves_no_staging_and_no_output(tmp_path, runner):
    out = tmp_path / "out"

    def explode(batch):
        if max(batch["id"].to_pylist()) >= 1_500:
            raise RuntimeError("boom")
        return batch

    sl.configure(on_error="raise")
    with pytest.raises(sl.UserCodeError):
        sl.range(2_000).repartition(4).map_batches(explode, schema=pa.schema([("id", pa.int64())])).write_parquet(
            str(out))
    assert _data_files(out) == []
    assert not os.path.exists(out / "_sluice_staging")
    with pytest.raises(sl.SourceNotFoundError):
        sl.read_parquet(str(out))


# ---------------------------------------------------------------- modes


@pytest.mark.parametrize("writer, reader", [("write_parquet", "read_parquet"), ("write_csv", "read_csv"),
                                            ("write_json", "read_json")])
def test_append_twice_then_read_gives_both(tmp_path, runner, writer, reader):
    out = str(tmp_path / "out")
    getattr(_data(0, 300), writer)(out, mode="append")
    getattr(_data(1_000, 200), writer)(out, mode="append")
    back = getattr(sl, reader)(out).to_arrow()
    assert sorted(back["id"].to_pylist()) == list(range(300)) + list(range(1_000, 1_200))


def test_many_appends_each_count_once(tmp_path, runner):
    out = str(tmp_path / "out")
    for k in range(7):  # more manifests than the reader reads one by one
        sl.range(k * 100, k * 100 + 10).write_parquet(out, mode="append")
    assert _ids(out) == sorted(i for k in range(7) for i in range(k * 100, k * 100 + 10))
    assert len([n for n in os.listdir(out) if n.startswith("_sluice_manifest_")]) == 7


def test_overwrite_partitions_keeps_untouched_partitions(tmp_path, runner, duck):
    sl.configure(snapshot_retention_s=0)  # no reader needs the replaced files: they go at the commit
    out = tmp_path / "out"
    _data().write_parquet(str(out), partition_by=["day"])
    replacement = sl.range(50_000, 50_100).with_columns(day=lit(1), amount=col("id") * 0 - 1)
    replacement.write_parquet(str(out), partition_by=["day"], mode="overwrite-partitions")

    back = sl.read_parquet(str(out)).to_arrow()
    kept = [i for i in range(ROWS) if i % 3 != 1]
    assert sorted(back["id"].to_pylist()) == sorted(kept + list(range(50_000, 50_100)))
    assert set(back.filter(pa.compute.equal(back["day"], 1))["amount"].to_pylist()) == {-1}
    # the replaced partition's old files are gone from disk too, so other engines agree
    expected = q(duck, "SELECT id, amount, day FROM t", t=back.select(["id", "amount", "day"]))
    assert_same(q(duck, f"SELECT id, amount, day FROM read_parquet({sqlpath(str(out) + '/*/*.parquet')}, "
                        "hive_partitioning = true)"), expected)


def test_overwrite_replaces_and_removes_old_files(tmp_path, runner, duck):
    sl.configure(snapshot_retention_s=0)
    out = tmp_path / "out"
    _data().write_parquet(str(out), partition_by=["day"])
    _data(7_000, 10).write_parquet(str(out), mode="overwrite")  # a new layout: no partitions

    assert _ids(out) == list(range(7_000, 7_010))
    assert duck.sql(f"SELECT count(*) FROM read_parquet({sqlpath(str(out) + '/**/*.parquet')})").fetchall()[0][0] == 10
    assert [n for n in os.listdir(out) if n.startswith("_sluice_manifest_")] and \
        len([n for n in os.listdir(out) if n.startswith("_sluice_manifest_")]) == 1  # superseded manifests go


def test_mode_errors_name_the_fix(tmp_path, runner):
    out = tmp_path / "out"
    _data().write_parquet(str(out), partition_by=["day"])
    with pytest.raises(sl.SinkError, match="already holds data"):
        _data().write_parquet(str(out), partition_by=["day"])
    with pytest.raises(sl.SinkError, match="partitioned by \\['day'\\]"):
        _data().write_parquet(str(out), mode="append")
    with pytest.raises(sl.SinkError, match="needs partition_by"):
        _data().write_parquet(str(out), mode="overwrite-partitions")


def test_append_to_a_directory_sluice_did_not_write_keeps_its_files(tmp_path, runner, duck):
    out = tmp_path / "plain"
    out.mkdir()
    pq.write_table(pa.table({"id": pa.array(range(5), pa.int64()), "day": pa.array([9] * 5, pa.int64()),
                             "amount": pa.array([0] * 5, pa.int64())}), out / "legacy.parquet")
    _data().write_parquet(str(out), mode="append")
    assert _ids(out) == sorted(list(range(5)) + list(range(ROWS)))
    assert duck.sql(f"SELECT count(*) FROM read_parquet({sqlpath(str(out) + '/*.parquet')})").fetchall()[0][0] == \
        ROWS + 5


# ---------------------------------------------------------------- idempotence and staged files


def _commit_run(out: str, run_id: str, table: pa.Table, mode: str = "append"):
    sink = ParquetSink(out, partition_by=["day"], mode=mode)
    sink.prepare(run_id)
    written = []
    for block in table.to_batches(max_chunksize=250):
        written += sink.write_block(pa.Table.from_batches([block]))
    return sink, written


def test_committing_the_same_run_id_again_does_not_duplicate(tmp_path, runner):
    out = str(tmp_path / "out")
    table = _data().to_arrow()
    sink, written = _commit_run(out, "run-1", table)
    first = sink.commit(written)
    again = sink.commit(written)  # the same sink, e.g. a retried commit call
    assert again.files == first.files and again.rows == first.rows == ROWS

    sink2, written2 = _commit_run(out, "run-1", table)  # a new process resuming run-1: stages again
    assert sink2.commit(written2).files == first.files
    assert _ids(out) == list(range(ROWS))
    assert len(_data_files(out)) == len(first.files)
    assert not os.path.exists(os.path.join(out, "_sluice_staging"))

    # mode='error' re-run of a run that committed is a no-op, not an error
    sink3, written3 = _commit_run(out, "run-1", table, mode="error")
    assert sink3.commit(written3).rows == ROWS
    assert _ids(out) == list(range(ROWS))


def test_rerun_of_a_run_that_crashed_mid_publish_completes_once(tmp_path, runner, crash_at):
    out = str(tmp_path / "out")
    table = _data().to_arrow()
    sink, written = _commit_run(out, "run-7", table)
    crash_at("mid-publish")
    with pytest.raises(Crash):
        sink.commit(written)
    with pytest.raises(sl.SourceNotFoundError):
        sl.read_parquet(out)

    crash_at("none")
    sink2, written2 = _commit_run(out, "run-7", table)
    sink2.commit(written2)
    assert _ids(out) == list(range(ROWS))


def test_readers_ignore_staged_files(tmp_path, runner, duck):
    out = str(tmp_path / "out")
    _data().write_parquet(out, partition_by=["day"])
    sink, written = _commit_run(out, "run-staged", _data(90_000).to_arrow())  # staged, never committed
    assert written and all(os.path.exists(f"{sink.staging_dir}/{w[0]}") for w in written)
    assert _ids(out) == list(range(ROWS))
    assert len(sl.read_parquet(out).to_arrow()) == ROWS

    plain = tmp_path / "plain"  # without a commit log, the hidden-entry rule still hides staging
    (plain / "_sluice_staging" / "r").mkdir(parents=True)
    pq.write_table(pa.table({"id": [1]}), plain / "_sluice_staging" / "r" / "x.parquet")
    pq.write_table(pa.table({"id": [2]}), plain / "data.parquet")
    assert _ids(plain) == [2]


# ---------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def s3():
    with moto_s3("commits") as server:
        yield server


def test_s3_killed_append_and_overwrite_partitions(s3, tmp_path, runner):
    sl.configure(snapshot_retention_s=0)
    fs, endpoint = s3
    out = f"commits/out-{runner}"  # both runner params share the module's S3 server
    _data().write_parquet(out, partition_by=["day"], filesystem=fs)
    _crash_child(tmp_path, out, "append", 10_000, "mid-publish", {"TEST_S3_ENDPOINT": endpoint})

    names = [i.path for i in fs.get_file_info(pafs.FileSelector(out, recursive=True))]
    assert any("_sluice_pending_" in n for n in names)  # the crash left its intent and published files
    assert _ids(out, filesystem=fs) == list(range(ROWS))

    sl.range(50_000, 50_010).with_columns(day=lit(2), amount=col("id")).write_parquet(
        out, partition_by=["day"], mode="overwrite-partitions", filesystem=fs)
    assert _ids(out, filesystem=fs) == sorted([i for i in range(ROWS) if i % 3 != 2]
                                                        + list(range(50_000, 50_010)))
    def left():
        return [i.path for i in fs.get_file_info(pafs.FileSelector(f"{out}/day=2", recursive=True))
                if i.type == pafs.FileType.File]

    def unlisted():  # data files on disk that the commit log does not list
        on_disk = {i.path for i in fs.get_file_info(pafs.FileSelector(out, recursive=True))
                   if i.type == pafs.FileType.File and "/_" not in i.path[len(out):]}
        return on_disk - set(resolve_files(out, fs).paths)

    # the crashed append's half-published file is in no committed manifest, so no commit deletes it (it could be
    # a running writer's); gc does, once it is older than the retention period
    assert len(unlisted()) == 1
    collect_dataset_garbage(out, fs, older_than_s=0)
    assert unlisted() == set() and len(left()) == 1
    assert not any("_sluice_pending_" in i.path for i in fs.get_file_info(pafs.FileSelector(out)))
    assert _ids(out, filesystem=fs) == sorted([i for i in range(ROWS) if i % 3 != 2] + list(range(50_000, 50_010)))

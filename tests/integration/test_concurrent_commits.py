"""Writers that commit to one destination at once take turns; readers keep the snapshot they planned.

The bad interleavings are forced, not waited for: a hook runs one writer's whole commit at the
exact point of the other's (after it published its files, before its manifest; after it drew its
sequence, before its manifest landed). The random trials run two commits on threads with random
pauses at every commit point, so each trial interleaves them differently; whatever the order, the
destination must end as one complete snapshot that reads back whole (or one writer must fail
with a clear conflict error). Most run with snapshot_retention_s=0, where garbage collection
deletes as soon as it may: the harshest setting for a writer whose files are published but not
committed yet.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from conftest import moto_s3

import sluice as sl
from sluice.io import commit, sinks
from sluice.io.commit import collect_dataset_garbage
from sluice.io.manifest import read_log
from sluice.io.sinks import ParquetSink

ROWS = 600


def _table(start: int, rows: int = ROWS) -> pa.Table:
    ids = list(range(start, start + rows))
    return pa.table({"id": pa.array(ids, pa.int64()), "day": pa.array([i % 4 for i in ids], pa.int64())})


def _staged(out: str, run_id: str, start: int, mode: str, filesystem=None) -> tuple[ParquetSink, list]:
    """A writer that has staged its blocks and is about to commit, as a run's driver is after its tasks."""
    sink = ParquetSink(out, partition_by=["day"], mode=mode, filesystem=filesystem)
    sink.prepare(run_id)
    written = []
    for block in _table(start).to_batches(max_chunksize=100):
        written += sink.write_block(pa.Table.from_batches([block]))
    return sink, written


def _ids(out: str, filesystem=None) -> list[int]:
    return sorted(sl.read_parquet(out, filesystem=filesystem).to_arrow()["id"].to_pylist())


def _first(start: int) -> list[int]:
    return list(range(start, start + ROWS))


@pytest.fixture
def no_retention(runner):
    sl.configure(snapshot_retention_s=0)


# ---------------------------------------------------------------- forced interleavings


def test_garbage_collection_spares_the_files_another_writer_published_but_not_committed(
        tmp_path, runner, no_retention, monkeypatch):
    out = str(tmp_path / "out")
    sl.from_arrow(_table(0)).write_parquet(out, partition_by=["day"])
    late, late_files = _staged(out, "run-late", 20_000, "overwrite")
    early, early_files = _staged(out, "run-early", 10_000, "overwrite")

    interleaved = []

    def at(point):  # the late writer has read the log and published its files; its manifest is not written
        if point == "before-manifest" and not interleaved:
            interleaved.append(point)
            early.commit(early_files)  # reads the log, commits, collects garbage: all in that window

    monkeypatch.setattr(sinks, "crash_point", at)
    late.commit(late_files)

    assert _ids(out) == _first(20_000)  # the later commit's snapshot, every file of it there
    assert [m.run_id for m in read_log(late.filesystem, late.path).committed][-1] == "run-late"


def test_two_writers_that_drew_the_same_sequence_commit_one_after_the_other(tmp_path, runner, no_retention,
                                                                             monkeypatch):
    out = str(tmp_path / "out")
    sl.from_arrow(_table(0)).write_parquet(out, partition_by=["day"])
    # "run-a" sorts before "run-z": before claims, both took sequence 1 and run-z's overwrite won the replay,
    # while run-a's garbage collection, from its view without run-z, deleted run-z's files
    first, first_files = _staged(out, "run-a", 10_000, "overwrite")
    second, second_files = _staged(out, "run-z", 20_000, "overwrite")
    put = sinks.FileSink._put_atomic
    interleaved = []

    def put_then_let_the_other_commit(self, path, data):
        if self is first and "_sluice_manifest_" in path and not interleaved:
            interleaved.append(path)
            second.commit(second_files)  # the other writer read the log before this manifest landed
        put(self, path, data)

    monkeypatch.setattr(sinks.FileSink, "_put_atomic", put_then_let_the_other_commit)
    first.commit(first_files)

    assert interleaved
    log = read_log(first.filesystem, first.path)
    sequences = [m.sequence for m in log.committed]
    assert len(sequences) == len(set(sequences))  # one manifest per sequence
    assert log.committed[-1].run_id == "run-z" and _ids(out) == _first(20_000)


def test_mode_error_writer_that_loses_the_race_fails_clearly_and_publishes_nothing(tmp_path, runner, monkeypatch):
    out = str(tmp_path / "out")
    first, first_files = _staged(out, "run-1", 0, "error")
    second, second_files = _staged(out, "run-2", 10_000, "error")
    claim = commit.claim_sequence

    def claim_after_the_other(fs, root, sequence, run_id, retry):
        if run_id == "run-1" and not read_log(fs, root).committed:
            second.commit(second_files)
        return claim(fs, root, sequence, run_id, retry)

    monkeypatch.setattr(sinks, "claim_sequence", claim_after_the_other)
    with pytest.raises(sl.SinkError, match="Another job wrote"):
        first.commit(first_files)
    assert _ids(out) == _first(10_000)
    assert not [n for n in os.listdir(out) if n.startswith(("_sluice_pending_", "_sluice_claim_"))]
    assert not any("run-1" in f for _, _, files in os.walk(out) for f in files)


def test_a_claim_left_by_a_dead_writer_is_skipped(tmp_path, runner):
    out = tmp_path / "out"
    sl.from_arrow(_table(0)).write_parquet(str(out), partition_by=["day"])
    (out / "_sluice_claim_0000000001.json").write_text('{"run_id": "killed"}')  # it died before its manifest
    sl.from_arrow(_table(10_000)).write_parquet(str(out), partition_by=["day"], mode="append")
    assert _ids(str(out)) == sorted(_first(0) + _first(10_000))
    assert [m.sequence for m in read_log(pafs.LocalFileSystem(), str(out)).committed] == [0, 2]


def test_a_writer_that_never_gets_a_turn_fails_with_a_conflict_error_and_publishes_nothing(tmp_path, runner,
                                                                                           monkeypatch):
    out = str(tmp_path / "out")
    sl.from_arrow(_table(0)).write_parquet(out, partition_by=["day"])
    monkeypatch.setattr(sinks, "claim_sequence", lambda *args: False)  # always another writer's turn
    monkeypatch.setattr(sinks, "pause_before_retry", lambda attempt: None)
    with pytest.raises(sl.CommitConflictError, match="Other writers committed .* nothing of it was published"):
        sl.from_arrow(_table(10_000)).write_parquet(out, partition_by=["day"], mode="append")
    assert _ids(out) == _first(0)
    assert sorted(n for n in os.listdir(out) if n.startswith("_")) == \
        sorted(n for n in os.listdir(out) if n.startswith(("_sluice_manifest_", "_SUCCESS")))
    assert len([f for _, _, files in os.walk(out) for f in files if not f.startswith("_")]) == 4  # the first write's


# ---------------------------------------------------------------- random trials


def _race(out: str, modes: tuple[str, str], seed: int, filesystem=None) -> tuple[list[int] | None, list]:
    """Two writers commit at once, pausing at random at every commit point; returns the ids read back and the
    errors the writers raised."""
    writers = [_staged(out, f"run-{seed}-{k}", 10_000 * (k + 1), modes[k], filesystem) for k in range(2)]
    errors = []

    def commit_one(sink, written):
        try:
            sink.commit(written)
        except sl.CommitConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=commit_one, args=w, name=f"w{k}") for k, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _ids(out, filesystem), errors


def _race_many(tmp_path, monkeypatch, modes, trials, filesystem=None, prefix=None):
    def pause(point: str = "") -> None:  # at every commit point and every listing of the log
        time.sleep(random.uniform(0, 0.004))

    monkeypatch.setattr(sinks, "crash_point", pause)
    read = commit.list_root

    def slow_listing(fs, root):
        pause()
        return read(fs, root)

    monkeypatch.setattr(commit, "list_root", slow_listing)
    for trial in range(trials):
        random.seed(trial)
        out = f"{prefix}/trial-{trial}" if prefix else str(tmp_path / f"trial-{trial}")
        sl.from_arrow(_table(0)).write_parquet(out, partition_by=["day"], filesystem=filesystem)
        ids, errors = _race(out, modes, trial, filesystem)
        a, b = _first(10_000), _first(20_000)
        if modes == ("overwrite", "overwrite"):
            assert ids in (a, b), f"trial {trial}: neither writer's snapshot"
        else:  # an overwrite and an append: the append landed before the overwrite, or after it
            assert ids in (a, sorted(a + b)), f"trial {trial}: not one complete snapshot"
        assert not errors, f"trial {trial}: {errors}"


@pytest.mark.parametrize("modes", [("overwrite", "overwrite"), ("overwrite", "append")])
def test_random_interleavings_of_two_commits_end_in_one_complete_snapshot(tmp_path, runner, no_retention,
                                                                          monkeypatch, modes):
    _race_many(tmp_path, monkeypatch, modes, trials=20)


@pytest.fixture(scope="module")
def s3():
    with moto_s3("races") as server:
        yield server


@pytest.mark.parametrize("modes", [("overwrite", "overwrite"), ("overwrite", "append")])
def test_s3_random_interleavings_end_in_one_complete_snapshot(s3, tmp_path, runner, no_retention, monkeypatch,
                                                               modes):
    if runner == "ray":
        pytest.skip("the commit runs in the driver the same way for both runners; the local run covers it")
    fs, _ = s3
    _race_many(tmp_path, monkeypatch, modes, trials=4, filesystem=fs, prefix=f"races/{runner}-{'-'.join(modes)}")


def test_s3_claims_seen_by_both_writers_make_both_try_again(s3, runner):
    if runner == "ray":
        pytest.skip("the commit runs in the driver the same way for both runners; the local run covers it")
    fs, _ = s3
    out = f"races/claims-{runner}"
    sl.from_arrow(_table(0)).write_parquet(out, partition_by=["day"], filesystem=fs)
    put = fs.open_output_stream
    # another writer's claim on the next sequence, written before this one lists: neither may take sequence 1
    with put(f"{out}/_sluice_claim_0000000001-other-run.json") as stream:
        stream.write(b"{}")
    assert not commit.claim_sequence(fs, out, 1, "this-run", lambda fn, what: fn())
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(out))}
    assert "_sluice_claim_0000000001-this-run.json" not in names  # the loser took its claim back
    # the write goes on at the next free sequence
    sl.from_arrow(_table(10_000)).write_parquet(out, partition_by=["day"], mode="append", filesystem=fs)
    assert [m.sequence for m in read_log(fs, out).committed] == [0, 2]
    assert _ids(out, fs) == sorted(_first(0) + _first(10_000))


# ---------------------------------------------------------------- readers and retention


def test_a_reader_planned_before_an_overwrite_reads_its_snapshot_whole(tmp_path, runner):
    out = str(tmp_path / "out")
    sl.from_arrow(_table(0)).write_parquet(out, partition_by=["day"])
    planned = sl.read_parquet(out).filter(sl.col("day") != 99)  # lists the files of the snapshot now
    sl.from_arrow(_table(10_000)).write_parquet(out, partition_by=["day"], mode="overwrite")

    assert sorted(planned.to_arrow()["id"].to_pylist()) == _first(0)  # the old snapshot, whole
    assert _ids(out) == _first(10_000)  # a new reader sees the new one

    removed = collect_dataset_garbage(out, older_than_s=0)  # `sluice gc --dataset`: retention over
    assert len(removed) >= 4 and _ids(out) == _first(10_000)
    with pytest.raises(sl.SourceError, match="gone"):
        planned.to_arrow()


def test_replaced_files_go_at_a_later_commit_once_the_retention_passed(tmp_path, runner):
    out = str(tmp_path / "out")
    sl.from_arrow(_table(0)).write_parquet(out, partition_by=["day"])
    sl.from_arrow(_table(10_000)).write_parquet(out, partition_by=["day"], mode="overwrite")
    def files():
        return sorted(os.path.join(d, f) for d, _, names in os.walk(out) for f in names
                      if "/_" not in os.path.join(d, f)[len(out):])

    kept = files()
    assert len(kept) == 8  # the old snapshot's 4 files stay for readers planned before the overwrite
    sl.configure(snapshot_retention_s=0)
    sl.from_arrow(_table(20_000)).write_parquet(out, partition_by=["day"], mode="overwrite")
    assert len(files()) == 4 and _ids(out) == _first(20_000)
    assert len([n for n in os.listdir(out) if n.startswith("_sluice_manifest_")]) == 1


def test_a_manifest_removed_while_the_log_is_read_is_listed_again(tmp_path, runner):
    out = str(tmp_path / "out")
    sl.from_arrow(_table(0)).write_parquet(out, partition_by=["day"])
    sl.from_arrow(_table(10_000)).write_parquet(out, partition_by=["day"], mode="overwrite")
    fs = pafs.LocalFileSystem()
    listing = fs.get_file_info(pafs.FileSelector(out))
    os.remove(os.path.join(out, read_log(fs, out).committed[0].name))  # a garbage collection, just now
    assert [m.run_id for m in read_log(fs, out, listing).committed] == \
        [read_log(fs, out).committed[-1].run_id]


def _explode(batch):
    if any(i % 20 == 7 for i in batch["id"].to_pylist()):
        raise ValueError("a bad row")
    return batch


def test_a_write_over_its_error_budget_leaves_no_destination_folder(tmp_path, runner):
    out = tmp_path / "never"
    failing = sl.range(200).repartition(2).map_batches(_explode, schema=pa.schema([("id", pa.int64())]))
    sl.configure(max_bad_records=3)  # 10 bad rows
    with pytest.raises(sl.TooManyBadRecordsError):
        failing.write_parquet(str(out))
    assert not out.exists()

    existing = tmp_path / "empty"
    existing.mkdir()  # a folder that was there before stays, as it was
    sl.configure(on_error="raise")
    with pytest.raises(sl.UserCodeError):
        failing.write_parquet(str(existing))
    assert existing.is_dir() and os.listdir(existing) == []


def test_sluice_gc_dataset_removes_the_replaced_files(tmp_path, runner):
    out = str(tmp_path / "out")
    sl.from_arrow(_table(0)).write_parquet(out, partition_by=["day"])
    sl.from_arrow(_table(10_000)).write_parquet(out, partition_by=["day"], mode="overwrite")

    def gc(*extra):
        run = subprocess.run([sys.executable, "-m", "sluice", "gc", "--dataset", out, *extra], check=False,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert "removed 0 replaced" in gc()  # within the retention period (a day): kept for readers
    assert "would remove 5 replaced" in gc("--older-than", "0", "--dry-run")  # 4 files and the old manifest
    assert "removed 5 replaced" in gc("--older-than", "0")
    assert _ids(out) == _first(10_000)
    assert len([n for n in os.listdir(out) if n.startswith("_sluice_manifest_")]) == 1


WRITER = """
import sys
import sluice as sl
from sluice import col
out, mode, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
sl.configure(snapshot_retention_s=0)
sl.range(start, start + 6_000).with_columns(p=col("id") % 12).repartition(6).write_parquet(
    out, mode=mode, partition_by=["p"])
"""


@pytest.mark.parametrize("modes", [("overwrite", "overwrite"), ("overwrite", "append")])
def test_two_processes_writing_at_once_leave_one_complete_snapshot(tmp_path, runner, modes):
    if runner == "ray":
        pytest.skip("the commit runs in the driver the same way for both runners; the local run covers it")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, SLUICE_RUNNER="local", SLUICE_NUM_THREADS="2")
    for trial in range(2):
        out = str(tmp_path / f"trial-{trial}")
        sl.range(0, 6_000).with_columns(p=sl.col("id") % 12).write_parquet(out, partition_by=["p"])
        writers = [subprocess.Popen([sys.executable, str(script), out, mode, str(10_000 * (k + 1))], env=env,
                                    stderr=subprocess.PIPE, text=True) for k, mode in enumerate(modes)]
        for writer in writers:
            assert writer.wait(timeout=240) == 0, writer.stderr.read()[-2000:]
        ids = _ids(out)
        a, b = list(range(10_000, 16_000)), list(range(20_000, 26_000))
        assert ids in ((a, b) if modes[1] == "overwrite" else (a, sorted(a + b))), f"trial {trial}"

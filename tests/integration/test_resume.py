"""Checkpoint and resume: a write job killed with SIGKILL at any point finishes with `sluice resume`.

The job runs in a child process (a join, an aggregation and a Parquet write), which is
killed at a seeded random moment, or at a named point (crash_points.py) for the
narrow windows: mid-exchange, mid-commit. After each kill, readers must see the previous
state of the output, untouched; then the run is resumed, and the output must equal DuckDB's
answer on the same files, each group once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import ResumeError, col
from sluice import config as sl_config
from sluice.crash_points import CRASH_POINTS
from sluice.driver.resume import collect_garbage

# what these tests check happens in exchanges: plan them even for small inputs (no fusion)
pytestmark = pytest.mark.usefixtures("staged")

JOB = """
import sys
import sluice as sl
from sluice import col

facts, dims, out = sys.argv[1:4]
joined = sl.read_parquet(facts).join(sl.read_parquet(dims), on="k", strategy="shuffle")
joined.group_by("g").agg(n=col("v").count(), s=col("v").sum()).write_parquet(out, mode="overwrite")
"""

ORACLE = "SELECT g, count(v) AS n, sum(v)::BIGINT AS s FROM read_parquet('{facts}/*.parquet') f " \
         "JOIN read_parquet('{dims}/*.parquet') d USING (k) GROUP BY g"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    facts, dims = root / "facts", root / "dims"
    facts.mkdir()
    dims.mkdir()
    rng = np.random.default_rng(7)
    for i in range(4):
        rows = 150_000
        pq.write_table(pa.table({"k": rng.integers(0, 20_000, rows), "v": rng.integers(0, 1000, rows)}),
                       facts / f"part-{i}.parquet", row_group_size=50_000)
    pq.write_table(pa.table({"k": np.arange(20_000), "g": np.arange(20_000) % 500}), dims / "dims.parquet")
    script = root / "job.py"
    script.write_text(JOB)
    return {"facts": str(facts), "dims": str(dims), "script": str(script)}


def _rows(table: pa.Table) -> list[tuple]:
    return sorted(tuple(r.values()) for r in table.select(["g", "n", "s"]).to_pylist())


def _oracle(lake) -> list[tuple]:
    return _rows(duckdb.sql(ORACLE.format(**lake)).to_arrow_table())


def _env(runs: str, **extra) -> dict:
    return dict(os.environ, SLUICE_RUNS_DIR=runs, SLUICE_NUM_THREADS="2", SLUICE_PROGRESS="0",
                SLUICE_RUNNER=sl_config.current().runner, SLUICE_FUSE_FRACTION="0", **extra)


def _start(lake, out: str, runs: str, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, lake["script"], lake["facts"], lake["dims"], out],
                            env=_env(runs, **extra), stderr=subprocess.PIPE, text=True)


def _run_id(runs: str) -> str:
    (run_id,) = [n for n in os.listdir(runs) if not n.startswith("_")]
    return run_id


def _old_output(out: str) -> list[tuple]:
    """A committed dataset from an earlier job, which the killed job was overwriting."""
    table = pa.table({"g": [-1, -2], "n": [0, 0], "s": [0, 0]})
    sl.from_arrow(table).write_parquet(out)
    return _rows(table)


def _visible(out: str) -> list[tuple]:
    return _rows(sl.read_parquet(out).to_arrow())


def _killed_phase(runs: str, run_id: str) -> str:
    """Where the kill landed, read from the run's event log."""
    events = [json.loads(line) for line in open(os.path.join(runs, run_id, "events.jsonl")) if line.endswith("\n")]
    saved = sum(1 for e in events if e["event"] == "checkpoint" and e["what"] == "exchange saved")
    if any(e["event"] == "stage_end" and e["stage"] == max(x.get("stage", 0) for x in events) for e in events):
        return "commit"
    return "map work" if saved == 0 else "exchange"


def test_sigkill_at_random_points_then_resume_gives_the_uninterrupted_output(lake, tmp_path, runner):
    expected = _oracle(lake)
    reference = tmp_path / "reference"
    started = time.perf_counter()
    child = _start(lake, str(reference / "out"), str(reference / "runs"))
    assert child.wait(timeout=120) == 0, child.stderr.read()
    duration = time.perf_counter() - started
    assert _visible(str(reference / "out")) == expected

    # Under Ray each trial starts a new Ray job (its workers start and import sluice: seconds), so it runs
    # 5 trials, not 20: the points that the Ray runner's own code reaches (a map task's checkpoint, the
    # first and the second exchange complete, write tasks staged before the commit) and one random kill.
    # The commit's other points are the driver's, the same code under both runners, tested under local.
    points = CRASH_POINTS if runner == "local" else \
        ("mid-exchange", "after-exchange", "after-exchange:2", "before-commit")
    phases = []
    for trial in range(20 if runner == "local" else len(points) + 1):
        base = tmp_path / f"trial{trial}"
        out, runs = str(base / "out"), str(base / "runs")
        old = _old_output(out)
        if trial < len(points):
            child = _start(lake, out, runs, SLUICE_TEST_CRASH_AT=points[trial])
            child.wait(timeout=120)
        else:
            child = _start(lake, out, runs)
            delay = random.Random(trial).uniform(0.0, 0.8) * duration
            deadline = time.perf_counter() + 60
            while not os.path.exists(runs) and time.perf_counter() < deadline and child.poll() is None:
                time.sleep(0.005)
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        if child.returncode == 0:  # it finished before the kill: nothing to resume
            assert _visible(out) == expected
            continue
        assert child.returncode == -signal.SIGKILL, child.stderr.read()
        run_id = _run_id(runs)
        with open(os.path.join(runs, run_id, "run.json")) as f:
            if json.load(f)["status"] == "succeeded":  # killed while the interpreter shut down
                assert _visible(out) == expected
                continue
        phases.append(_killed_phase(runs, run_id))

        before = _visible(out)
        assert before in (old, expected), f"trial {trial}: readers saw a partial output before the resume"
        if trial % 5 == 0:  # the command a user types
            resumed = subprocess.run(["sluice", "resume", run_id], env=_env(runs), capture_output=True, text=True,
                                     timeout=120)
            assert resumed.returncode == 0, resumed.stderr
            assert f"run {run_id} is complete" in resumed.stdout
        else:
            sl.resume(run_id, runs_dir=runs)

        after = _visible(out)
        assert after == expected, f"trial {trial} (killed during {phases[-1]}): wrong output after resume"
        assert len({row[0] for row in after}) == len(after)  # each group once: no duplicated rows
        assert not os.path.exists(os.path.join(out, "_sluice_staging"))
        assert not os.path.exists(os.path.join(runs, run_id, "exchanges"))
        with open(os.path.join(runs, run_id, "run.json")) as f:
            assert json.load(f)["status"] == "succeeded"
    assert {"map work", "exchange", "commit"} <= set(phases), phases


def _crash(lake, out: str, runs: str, point: str) -> str:
    child = _start(lake, out, runs, SLUICE_TEST_CRASH_AT=point)
    assert child.wait(timeout=120) == -signal.SIGKILL, child.stderr.read()
    return _run_id(runs)


def test_resume_restores_finished_exchanges_instead_of_recomputing_them(lake, tmp_path, runner):
    out, runs = str(tmp_path / "out"), str(tmp_path / "runs")
    run_id = _crash(lake, out, runs, "after-exchange")
    sl.resume(run_id, runs_dir=runs)
    assert _visible(out) == _oracle(lake)
    events = [json.loads(line) for line in open(os.path.join(runs, run_id, "events.jsonl"))]
    restored = [e for e in events if e["event"] == "checkpoint" and e["what"] == "exchange restored"]
    assert len(restored) == 1
    starts = [e for e in events if e["event"] == "run_start"]
    assert len(starts) == 2  # the killed attempt and the resumed one, in one log
    # the restored exchange's upstream (a scan of the dimension table) did not run again
    resumed = [e for e in events if e["ts"] >= starts[1]["ts"] and e["event"] == "task_start"]
    scanned = {s["file"] for e in resumed for s in e.get("sources", [])}
    assert not any(path.endswith("dims.parquet") for path in scanned)


def test_resume_keeps_the_map_tasks_that_finished(lake, tmp_path, runner):
    facts = tmp_path / "facts"
    facts.mkdir()
    rng = np.random.default_rng(5)
    for i in range(12):  # incompressible values: several read tasks
        rows = 100_000
        pq.write_table(pa.table({"k": rng.integers(0, 20_000, rows), "v": rng.integers(0, 1 << 40, rows)}),
                       facts / f"part-{i}.parquet")
    many = dict(lake, facts=str(facts))
    out, runs = str(tmp_path / "out"), str(tmp_path / "runs")
    # killed at the third facts task's save (the dims' is the first): with two threads that task is some thread's
    # second, so that thread said its first one ended; the two tasks in flight at once may both save unannounced
    child = _start(many, out, runs, SLUICE_TEST_CRASH_AT="mid-exchange:4", SLUICE_MEMORY_BUDGET="64MiB")
    assert child.wait(timeout=120) == -signal.SIGKILL, child.stderr.read()
    run_id = _run_id(runs)
    sl.configure(memory_budget="64MiB")  # the same task split as the killed attempt
    sl.resume(run_id, runs_dir=runs)
    assert _visible(out) == _oracle(many)
    events = [json.loads(line) for line in open(os.path.join(runs, run_id, "events.jsonl"))]
    second = [e for e in events if e["event"] == "run_start"][1]["ts"]
    finished = {e["block"] for e in events if e["ts"] < second and e["event"] == "task_end" and e["status"] == "ok"}
    read_before = {s["file"] for e in events if e["ts"] < second and e["event"] == "task_start"
                   and e["block"] in finished for s in e.get("sources", []) if "facts" in s["file"]}
    read_again = {s["file"] for e in events if e["ts"] >= second and e["event"] == "task_start"
                  for s in e.get("sources", [])}
    assert read_before and not read_before & read_again  # finished map tasks did not run again
    (restored,) = [e for e in events if e["event"] == "checkpoint" and e["what"] == "map tasks restored"]
    done, total = map(int, restored["detail"].split(" of "))
    # three map tasks over the facts saved their output (the third was killed before saying so)
    assert done == 3 and total > 3


def test_resume_skips_write_tasks_that_finished(tmp_path, runner):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(6):
        pq.write_table(pa.table({"x": np.arange(i * 1000, (i + 1) * 1000)}), source / f"p{i}.parquet")
    script = tmp_path / "copy_job.py"
    script.write_text("import sys, sluice as sl\nfrom sluice import col\n"
                      "sl.read_parquet(sys.argv[1]).with_columns(y=col('x') * 2).write_parquet(sys.argv[2])\n")
    out, runs = str(tmp_path / "out"), str(tmp_path / "runs")
    child = subprocess.run([sys.executable, str(script), str(source), out],
                           env=_env(runs, SLUICE_TEST_CRASH_AT="before-commit", SLUICE_MEMORY_BUDGET="64MiB"),
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    run_id = _run_id(runs)
    with open(os.path.join(runs, run_id, "tasks.jsonl")) as f:
        logged = len(f.readlines())
    assert logged >= 1
    result = sl.resume(run_id, runs_dir=runs)
    table = sl.read_parquet(out).to_arrow()
    assert sorted(table["x"].to_pylist()) == list(range(6000))
    assert table["y"].to_pylist() == [2 * x for x in table["x"].to_pylist()]
    assert result.rows == 6000
    events = [json.loads(line) for line in open(os.path.join(runs, run_id, "events.jsonl"))]
    assert sum(1 for e in events if e["event"] == "checkpoint" and e["what"] == "task skipped") == logged


def test_resume_through_a_sort(tmp_path, runner):
    source = tmp_path / "in"
    source.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        pq.write_table(pa.table({"x": rng.permutation(50_000) + i * 50_000}), source / f"p{i}.parquet")
    script = tmp_path / "sort.py"
    script.write_text("import sys, sluice as sl\nsl.read_parquet(sys.argv[1]).sort('x').write_parquet(sys.argv[2])\n")
    out, runs = str(tmp_path / "out"), str(tmp_path / "runs")
    child = subprocess.run([sys.executable, str(script), str(source), out],
                           env=_env(runs, SLUICE_TEST_CRASH_AT="after-exchange"), capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    sl.resume(_run_id(runs), runs_dir=runs)
    assert sl.read_parquet(out).to_arrow()["x"].to_pylist() == list(range(150_000))


@pytest.mark.parametrize("change", ["rewrite", "add", "remove"])
def test_resume_refuses_when_an_input_changed(lake, tmp_path, change, runner):
    facts = tmp_path / "facts"
    facts.mkdir()
    for name in sorted(os.listdir(lake["facts"])):
        pq.write_table(pq.read_table(os.path.join(lake["facts"], name)), facts / name)
    changed = dict(lake, facts=str(facts))
    out, runs = str(tmp_path / "out"), str(tmp_path / "runs")
    run_id = _crash(changed, out, runs, "after-exchange")
    victim = facts / "part-1.parquet"
    if change == "rewrite":
        pq.write_table(pa.table({"k": [1], "v": [1]}), victim)
    elif change == "add":
        pq.write_table(pa.table({"k": [1], "v": [1]}), facts / "part-9.parquet")
        victim = facts / "part-9.parquet"
    else:
        victim.unlink()
    with pytest.raises(ResumeError, match="input changed") as raised:
        sl.resume(run_id, runs_dir=runs)
    assert str(victim) in str(raised.value)
    assert "Run the job again" in str(raised.value)
    cli = subprocess.run(["sluice", "resume", run_id], env=_env(runs), capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "input changed" in cli.stderr
    assert not os.path.exists(out) or not any(not n.startswith("_") for n in os.listdir(out))


def test_resume_refuses_a_finished_run_and_a_run_without_a_plan(tmp_path, runner):
    runs = str(tmp_path / "runs")
    sl.configure(runs_dir=runs)  # the runner fixture restores the settings
    ds = sl.range(10).with_columns(y=col("id") + 1)
    ds.write_parquet(str(tmp_path / "out"))
    run_id = ds.stats().run_id
    with pytest.raises(ResumeError, match="already succeeded"):
        sl.resume(run_id)

    def fail(batch):
        raise RuntimeError("not a row error")

    failing = sl.range(10).map_batches(fail, compute="threads")
    with pytest.raises(Exception, match="not a row error"):
        failing.to_arrow()  # not a write: nothing to resume
    with pytest.raises(ResumeError, match="only runs that write"):
        sl.resume(failing.stats().run_id)


def test_checkpoint_off_keeps_no_plan(tmp_path, monkeypatch, runner):
    monkeypatch.setenv("SLUICE_CHECKPOINT", "0")
    ds = sl.range(1000).group_by(col("id") % 3).agg(n=col("id").count())
    ds.write_parquet(str(tmp_path / "out"))
    run_dir = os.path.join(sl_config.current().runs_dir, ds.stats().run_id)
    assert not os.path.exists(os.path.join(run_dir, "plan.pkl"))
    assert sl.read_parquet(str(tmp_path / "out")).count() == 3


def test_run_json_says_whether_the_run_can_be_resumed(tmp_path, monkeypatch, runner):
    runs = str(tmp_path / "runs")
    sl.configure(runs_dir=runs)  # the runner fixture restores the settings

    def resumable(store_elsewhere: bool, checkpoint: str) -> bool:
        monkeypatch.setenv("SLUICE_CHECKPOINT", checkpoint)
        if store_elsewhere:  # the store is not in the run's directory (shared storage for a cluster)
            monkeypatch.setenv("SLUICE_CHECKPOINT_DIR", str(tmp_path / "stores"))
        else:
            monkeypatch.delenv("SLUICE_CHECKPOINT_DIR", raising=False)
        ds = sl.range(100).group_by(col("id") % 3).agg(n=col("id").count())
        ds.write_parquet(str(tmp_path / f"out-{store_elsewhere}-{checkpoint}"))
        with open(os.path.join(runs, ds.stats().run_id, "run.json")) as f:
            return json.load(f)["resumable"]

    assert resumable(False, "1") and resumable(True, "1")
    assert not resumable(False, "0")


def test_gc_removes_runs_past_the_retention(tmp_path, runner):
    runs = tmp_path / "runs"
    for name, age_s, status in [("old", 10 * 86400, "succeeded"), ("new", 60, "failed"),
                                ("crashed", 10 * 86400, "running")]:
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_text(json.dumps(
            {"run_id": name, "status": status, "started_at": time.time() - age_s, "wall_s": 1.0,
             "pid": 999_999_999, "host": os.uname().nodename}))
    live = runs / "live"
    live.mkdir()
    (live / "run.json").write_text(json.dumps({"run_id": "live", "status": "running", "started_at": 0,
                                               "pid": os.getppid(), "host": os.uname().nodename}))
    assert sorted(collect_garbage(str(runs), 7 * 86400, dry_run=True)) == ["crashed", "old"]
    assert sorted(os.listdir(runs)) == ["crashed", "live", "new", "old"]
    cli = subprocess.run(["sluice", "gc", "--older-than", "7d", "--runs-dir", str(runs)], capture_output=True,
                         text=True, timeout=60)
    assert cli.returncode == 0 and "removed 2 run directories" in cli.stdout
    assert sorted(os.listdir(runs)) == ["live", "new"]

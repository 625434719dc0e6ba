"""Resume keeps a run's record whole: its dead letters, counts, start time, and the work it finished.

A write run over CSV files with bad lines, through a UDF that fails on some rows and runs with
`batch_size=` (a stage that regroups the stream into batches), is killed, by SIGKILL at random
moments or at a named point, then resumed. After the resume: the output equals an uninterrupted
run's; the dead letters are the union of both attempts' (each bad record once); no write task
that ended `ok` before the kill started again, nor a read task whose rows those tasks had written
(counted from events.jsonl); `sluice runs` counts them and keeps the first attempt's start time.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import config as sl_config

JOB = """
import sys
import pyarrow.compute as pc
import sluice as sl

def flag(batch):
    if pc.any(pc.equal(pc.bit_wise_and(batch["a"], 1023), 1023)).as_py():
        raise ValueError("a ends in 1023")
    return batch.append_column("twice", pc.multiply(batch["a"], 2))

source, out, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
ds = sl.read_csv(source)
if batch_size:
    ds = ds.map_batches(flag, batch_size=batch_size, compute="threads")  # no worker processes: quicker trials
ds.write_parquet(out, mode="overwrite")
"""

FILES, LINES = 6, 3000  # per file; every 1000th line does not parse, and every a % 1024 == 1023 fails the UDF


@pytest.fixture(scope="module")
def csv_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("csv_lake")
    source = root / "in"
    source.mkdir()
    for f in range(FILES):
        lines = ["a,b"]
        for i in range(LINES):
            a = i  # every file holds the same rows: the UDF's bad rows differ only by the task that met them
            lines.append("not,a,row" if i % 1000 == 500 else f"{a},{a % 7}")
        (source / f"part-{f}.csv").write_text("\n".join(lines) + "\n")
    script = root / "job.py"
    script.write_text(JOB)
    return {"source": str(source), "script": str(script)}


def _env(runs: str, **extra) -> dict:
    return dict(os.environ, SLUICE_RUNS_DIR=runs, SLUICE_NUM_THREADS="2", SLUICE_PROGRESS="0",
                SLUICE_RUNNER=sl_config.current().runner, **extra)


def _start(lake, out: str, runs: str, batch_size: int, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, lake["script"], lake["source"], out, str(batch_size)],
                            env=_env(runs, **extra), stderr=subprocess.PIPE, text=True)


def _run_dir(runs: str) -> str:
    (run_id,) = [n for n in os.listdir(runs) if not n.startswith("_")]
    return os.path.join(runs, run_id)


def _output(out: str) -> list[tuple]:
    return sorted(tuple(r.values()) for r in sl.read_parquet(out).to_arrow().to_pylist())


def _dead_letters(run_dir: str) -> list[tuple]:
    """Each bad record as (stage, operator, source file, line, message, record): sorted, duplicates kept."""
    directory = os.path.join(run_dir, "bad_records")
    if not os.path.isdir(directory):
        return []
    table = pq.read_table(directory, columns=["stage", "operator", "source_file", "row_position", "message",
                                              "record_json"])
    return sorted(tuple(r.values()) for r in table.to_pylist())


def _events(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "events.jsonl")) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def _write_tasks_run_again(run_dir: str, total: int) -> tuple[int, int]:
    """(write tasks that ended ok before the resume, how many of them started again after it): by task key,
    and by count (the resume starts no more write tasks than the `total` less those that had finished). A kill
    during the commit is the exception: the commit had moved the staged files of the tasks that run again."""
    events = [e for e in _events(run_dir) if not e.get("driver")]  # blocks handed on by the driver ran no task
    resumed_at = [e["ts"] for e in events if e["event"] == "run_start"][-1]  # the killed one may have logged none
    write_stage = max(e["stage"] for e in events if e["event"] == "task_start")
    first = [e for e in events if e["ts"] < resumed_at]
    keys = {e["block"]: e.get("key") for e in first if e["event"] == "task_start" and e["stage"] == write_stage}
    finished = [keys[e["block"]] for e in first if e["event"] == "task_end" and e["status"] == "ok"
                and e["block"] in keys]
    started = [e.get("key") for e in events if e["ts"] >= resumed_at and e["event"] == "task_start"
               and e["stage"] == write_stage]
    if any(e["event"] == "stage_end" and e["stage"] == write_stage for e in first):
        # killed in the commit, which moves the staged files: the tasks whose files moved run again
        return len(finished), 0
    assert len(started) <= total - len(finished), f"{len(started)} write tasks ran after the resume"
    # a read task that had finished runs again only when a write task that runs again takes some of its rows
    every = {e["block"]: e.get("key") for e in first if e["event"] == "task_start"}
    read_before = {every[e["block"]] for e in first if e["event"] == "task_end" and e["status"] == "ok"
                   and e["stage"] != write_stage and e["block"] in every}
    after = [e for e in events if e["ts"] >= resumed_at and e["event"] == "task_start"]
    needed = {key for e in after if e["stage"] == write_stage for key in e.get("inputs", [])}
    read_again = {e.get("key") for e in after if e["stage"] != write_stage}
    assert not (read_before & read_again) - needed, "read tasks whose output was written already ran again"
    return len(finished), len(set(finished) & set(started))


def _wait_for_run(child: subprocess.Popen, runs: str) -> None:
    """Until the child's run has begun (its run directory exists), or it ended."""
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and child.poll() is None and not (
            os.path.isdir(runs) and [n for n in os.listdir(runs) if not n.startswith("_")]):
        time.sleep(0.002)


@pytest.fixture(scope="module")
def reference(csv_lake, tmp_path_factory):
    """The uninterrupted run: its output, its dead letters and how long it took."""
    base = tmp_path_factory.mktemp("reference")
    out, runs = str(base / "out"), str(base / "runs")
    child = _start(csv_lake, out, runs, 250)
    _wait_for_run(child, runs)
    started = time.perf_counter()
    assert child.wait(timeout=120) == 0, child.stderr.read()
    duration = time.perf_counter() - started
    letters = _dead_letters(_run_dir(runs))
    assert sum(1 for r in letters if r[1] == "Scan") == FILES * 3 and len(letters) > FILES * 3
    events = _events(_run_dir(runs))
    write_stage = max(e["stage"] for e in events if e["event"] == "task_start")
    tasks = sum(1 for e in events if e["event"] == "task_start" and e["stage"] == write_stage)
    return {"output": _output(out), "dead_letters": letters, "duration": duration,
            "write_tasks": tasks}


def test_sigkill_at_random_points_then_resume_keeps_output_dead_letters_and_finished_tasks(
        csv_lake, reference, tmp_path, runner):
    resumed_any = mid_write = 0
    # A Ray trial starts a Ray instance (seconds, most of a run's time), so under Ray three trials are killed
    # at named points after some write tasks finished, and one at random; under local all 20 are random.
    points = [] if runner == "local" else ["after-write-task:2", "after-write-task:9", "after-write-task:20"]
    for trial in range(20 if runner == "local" else len(points) + 1):
        base = tmp_path / f"trial{trial}"
        out, runs = str(base / "out"), str(base / "runs")
        if trial < len(points):
            child = _start(csv_lake, out, runs, 250, SLUICE_TEST_CRASH_AT=points[trial])
        else:
            child = _start(csv_lake, out, runs, 250)
            _wait_for_run(child, runs)
            time.sleep(random.Random(trial).uniform(0.0, 0.7) * reference["duration"])
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=120)
        if child.returncode == 0 or not os.path.exists(runs) or not [n for n in os.listdir(runs)
                                                                        if not n.startswith("_")]:
            continue  # it finished before the kill, or was killed before it began: nothing to resume
        run_dir = _run_dir(runs)
        if not os.path.exists(os.path.join(run_dir, "plan.pkl")):
            continue  # killed before its plan was saved: not resumable, nothing ran
        if os.path.exists(os.path.join(run_dir, "run.json")):
            with open(os.path.join(run_dir, "run.json")) as f:
                if json.load(f)["status"] == "succeeded":
                    continue
        sl.resume(os.path.basename(run_dir), runs_dir=runs)
        resumed_any += 1
        assert _output(out) == reference["output"], f"trial {trial}: wrong output after the resume"
        assert _dead_letters(run_dir) == reference["dead_letters"], f"trial {trial}: dead letters lost or doubled"
        finished, again = _write_tasks_run_again(run_dir, reference["write_tasks"])
        assert again == 0, f"trial {trial}: {again} of the {finished} write tasks that had finished ran again"
        mid_write += finished > 0
    assert resumed_any >= (5 if runner == "local" else 1)  # a loaded machine lets some runs finish first
    assert mid_write >= 1  # some kills came after write tasks had finished


@pytest.mark.parametrize("point", ["after-write-task:2", "before-commit"])
def test_a_resumed_run_keeps_the_first_attempts_dead_letters_counts_and_start_time(csv_lake, tmp_path, runner,
                                                                                  point):
    out, runs = str(tmp_path / "out"), str(tmp_path / "runs")
    # no batch_size: one write task per file, each with three unparsable lines; killed once two were logged,
    # or once all were, before the commit (the resume then runs no task at all)
    child = _start(csv_lake, out, runs, 0, SLUICE_TEST_CRASH_AT=point)
    assert child.wait(timeout=120) == -signal.SIGKILL, child.stderr.read()
    run_dir = _run_dir(runs)
    run_id = os.path.basename(run_dir)
    before = _dead_letters(run_dir)
    assert len(before) >= 6  # the finished tasks' bad lines were on disk before they were logged
    listed = subprocess.run(["sluice", "runs"], env=_env(runs), capture_output=True, text=True, timeout=60, check=False)
    assert "crashed" in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if run_id in line)
    assert f" {len(before)} " in row.replace("│", " ")  # the crashed run's bad records, not 0
    with open(os.path.join(run_dir, "run.json")) as f:
        first_start = json.load(f)["started_at"]

    sl.resume(run_id, runs_dir=runs)
    after = _dead_letters(run_dir)
    assert len(after) == len(set(after)) == FILES * 3  # three per file: the union, each once
    assert set(before) <= set(after)
    with open(os.path.join(run_dir, "run.json")) as f:
        run = json.load(f)
    assert run["bad_records"] == FILES * 3 and run["status"] == "succeeded"
    assert run["started_at"] == first_start
    crashed, resumed = run["attempts"]
    assert crashed["status"] == "crashed" and crashed["wall_s"] > 0 and resumed["status"] == "succeeded"
    assert run["wall_s"] == pytest.approx(crashed["wall_s"] + resumed["wall_s"])
    shown = subprocess.run(["sluice", "bad-records", run_id], env=_env(runs), capture_output=True, text=True,
                           timeout=60, check=False)
    assert f"{FILES * 3} bad record(s)" in shown.stdout
    # recorded_at is when the record was written, not a date in 1970
    recorded = pq.read_table(os.path.join(run_dir, "bad_records"), columns=["recorded_at"])["recorded_at"]
    now = datetime.datetime.now(datetime.timezone.utc)
    assert all(abs((now - t).total_seconds()) < 3600 for t in recorded.to_pylist())


def test_a_run_given_relative_paths_resumes_from_anywhere(csv_lake, tmp_path, runner):
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(csv_lake["source"], work / "in")
    runs = str(tmp_path / "runs")
    child = subprocess.run([sys.executable, csv_lake["script"], "in", "out", "0"], cwd=work,
                           env=_env(runs, SLUICE_TEST_CRASH_AT="before-commit"), capture_output=True, text=True,
                           timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    result = sl.resume(os.path.basename(_run_dir(runs)), runs_dir=runs)  # from the test's directory, not `work`
    assert result.rows == FILES * (LINES - 3)
    assert len(_output(str(work / "out"))) == FILES * (LINES - 3)

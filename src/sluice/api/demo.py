"""`sluice demo`: a short story, read top to bottom in the terminal, of what sluice does with a real-looking job.

It generates a lake (demo_data.py), then runs one pipeline over it, a filter, a class UDF in a
pool of worker processes, a join, a group_by and a window written partitioned, and prints, step by
step, the evidence of each thing it shows, taken from the run itself: the operators that ran
(`stats()`), the rows written (the WriteResult), the records it set aside (the dead-letter
dataset), a second run of the same script killed with SIGKILL in a child process and finished by
`sluice.resume`, and the HTML report.
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile

import pyarrow.parquet as pq

from ..errors import SluiceError
from .demo_data import generate_lake

# Where the child run is killed: the crash test hook (crash_points.py), standing in for the OOM killer or a
# power cut at a moment that is the same on every run of the demo: once the group_by's input is all saved.
KILL_AT = "after-exchange:2"


def run_demo(directory: str | None = None, rows: int = 1_000_000) -> None:
    from .. import config
    from ..observe.stats import report_console
    console = report_console()
    root = os.path.abspath(directory or tempfile.mkdtemp(prefix="sluice-demo-"))
    os.makedirs(root, exist_ok=True)
    with config.scope():  # the pipeline script's settings last for the demo only
        console.rule("[bold]sluice demo")
        lake = _step_lake(console, root, rows)
        features, stats, out = _step_pipeline(console, lake, rows)
        _step_bad_records(console, features, stats)
        _step_kill_and_resume(console, lake, out, stats)
        _step_report(console, stats)


def _heading(console, number: int, title: str) -> None:
    console.print()
    console.rule(f"[bold]{number}. {title}", align="left")


def _step_lake(console, root: str, rows: int) -> dict[str, str]:
    _heading(console, 1, "A lake")
    lake = generate_lake(root, rows)
    files = sum(len(names) for _, _, names in os.walk(lake["events"]))
    with open(lake["late"]) as late:
        late_lines = sum(1 for _ in late) - 1
    console.print(f"{rows:,} click events over 7 days in {files} Parquet files, hive-partitioned by date "
                  f"({lake['events']}); {pq.read_metadata(lake['users']).num_rows:,} users (users.parquet).")
    console.print(f"A partner's late drop of {late_lines:,} events as CSV (late/late-events.csv), three lines of "
                  f"which do not parse; a few purchases are in a currency the rate table lacks.")
    return lake


def _step_pipeline(console, lake: dict[str, str], rows: int):
    _heading(console, 2, "A pipeline: filter, class UDF pool, join, group_by, window, partitioned write")
    console.print(f"The pipeline is an ordinary script: {lake['script']} "
                  f"(`sluice explain {lake['script']} OUT` prints its plans and why the planner chose them).")
    pipeline = runpy.run_path(lake["script"], run_name="sluice_demo_pipeline")
    features = pipeline["features"]
    out = os.path.join(os.path.dirname(lake["script"]), "output", "user_days")
    result = pipeline["write"](out)
    stats = features.stats()
    ran = []
    for op in stats.operator_list():
        name = op.name.split(" (")[0]
        if name not in ran and name != "Partition":
            ran.append(name)
    console.print(f"Ran in {stats.wall_s:.1f}s: {' -> '.join(ran)}.")
    events_scan = stats.operator_list()[0]
    console.print(f"  the filters ran inside the events scan: it returned {events_scan.rows_out:,} of {rows:,} events "
                  f"(3 of 7 days pruned by partition, the bot's rows dropped as they were read)")
    for note in stats.notes:
        if note.startswith("map_batches ToEuro") or "broadcast" in note or "shuffle" in note:
            console.print(f"  {note}")
    partitions = sorted({os.path.basename(os.path.dirname(f)) for f in result.files})
    console.print(f"Wrote {result.rows:,} user-days in {len(result.files)} files under {out}, one folder per "
                  f"country ({', '.join(partitions)}).")
    _show_one_user(console, out)
    return features, stats, out


def _show_one_user(console, out: str) -> None:
    import polars as pl

    import sluice as sl
    table = sl.read_parquet(out).to_polars()
    # an ordinary customer, not one of the few heavy users: buys every day, with the fewest events
    steady = (table.group_by("user_id").agg(days=pl.len(), buying_days=(pl.col("purchases") > 0).sum(),
                                            events=pl.col("events").sum())
              .filter(pl.col("buying_days") == pl.col("days").max()).sort(["events", "user_id"]))
    user = steady["user_id"][0]
    console.print("One user's days: running_spend_eur is the window `col('spend_eur').cum_sum()"
                  ".over('user_id', order_by='date')`:")
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_width_chars=120):
        print(table.filter(pl.col("user_id") == user).sort("date").select(
            "user_id", "country", "plan", "date", "events", "purchases", "spend_eur", "running_spend_eur"))


def _step_bad_records(console, features, stats) -> None:
    import polars as pl
    _heading(console, 3, "Bad records: set aside, not dropped")
    console.print(f"[bold yellow]{stats.bad_records} bad records[/] were quarantined and the run went on "
                  f"(max_bad_records=100); the summary counts them. The dead-letter dataset "
                  f"({stats.bad_records_path}), as `sluice bad-records {stats.run_id}` lists it:")
    dead = features.bad_records().to_polars().select(
        pl.col("operator").str.split(" (").list.first(), pl.col("source_file").str.split("/").list.last(),
        "row_position", "exception_type", "message", pl.col("record_json").alias("record"))
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, fmt_str_lengths=40,
                   tbl_width_chars=170, tbl_rows=10):
        print(dead)


def _step_kill_and_resume(console, lake: dict[str, str], first_output: str, first_run) -> None:
    import sluice as sl

    from .. import config
    from ..driver import session
    from ..observe.history import run_directory
    _heading(console, 4, "A crash, then resume")
    runs_dir = config.current().runs_dir
    out = first_output + "_resumed"
    shutil.rmtree(out, ignore_errors=True)  # left by an earlier demo in this folder
    before = set(os.listdir(runs_dir))
    env = dict(os.environ, SLUICE_RUNS_DIR=runs_dir, SLUICE_RUNNER=config.current().runner, SLUICE_PROGRESS="0",
               SLUICE_TEST_CRASH_AT=KILL_AT)
    child = subprocess.run([sys.executable, "-m", "sluice", "run", lake["script"], out], env=env,
                           capture_output=True, text=True, timeout=300, check=False)
    if child.returncode != -signal.SIGKILL:
        raise SluiceError(f"the demo's child run was meant to be killed, and ended with {child.returncode}: "
                          f"{child.stderr[-2000:]}")
    (run_id,) = sorted(set(os.listdir(runs_dir)) - before)
    run_dir = run_directory(runs_dir, run_id)
    events = _events(run_dir)
    saved = sum(1 for e in events if e["event"] == "checkpoint" and e["what"] == "exchange saved")
    visible = os.path.exists(os.path.join(out, "_SUCCESS"))
    console.print(f"The same script again, as `sluice run pipeline.py` in a child process, killed with SIGKILL "
                  f"once {saved} exchanges were saved (by the crash tests' hook, SLUICE_TEST_CRASH_AT={KILL_AT}): "
                  f"run {run_id} crashed, and {out} has {'a' if visible else 'no'} committed output.")
    result = sl.resume(run_id)
    resumed = session.runs[-1]
    restored = [e for e in _events(run_dir)[len(events):] if e["event"] == "checkpoint" and "restored" in e["what"]]
    console.print(f"sluice.resume({run_id!r}): {resumed.status} in {resumed.wall_s:.1f}s, restoring "
                  f"{len(restored)} finished exchange(s) from the run store instead of recomputing them:")
    for note in resumed.notes:
        if "earlier attempt" in note or "restored" in note:
            console.print(f"  {note}")
    ran_again = {op.name.split(" (")[0] for op in resumed.operator_list() if op.blocks}
    skipped = sorted({op.name.split(" (")[0] for op in first_run.operator_list()} - ran_again)
    console.print(f"  skipped: {', '.join(skipped)}; ran again: {', '.join(sorted(ran_again))}")
    same = _same_rows(first_output, out)
    console.print(f"Committed once: {result.rows:,} rows in {len(result.files)} files, "
                  f"{'the same rows as the uninterrupted run, each once' if same else '[red]NOT the same rows[/]'}.")


def _events(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "events.jsonl")) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def _same_rows(left: str, right: str) -> bool:
    from polars.testing import assert_frame_equal

    import sluice as sl
    keys = ["user_id", "date"]
    a, b = (sl.read_parquet(path).to_polars().sort(keys) for path in (left, right))
    try:
        assert_frame_equal(a, b.select(a.columns), check_exact=False)  # sums of floats, added in any order
    except AssertionError:
        return False
    return not a.select(keys).is_duplicated().any()


def _step_report(console, stats) -> None:
    from .. import config
    from ..observe.history import run_directory
    from ..observe.report import write_report
    _heading(console, 5, "The summary and the report")
    console.rule("Summary")
    console.print(stats.table())
    for line in stats.footer_lines():
        console.print(line)
    report = write_report(run_directory(config.current().runs_dir, stats.run_id))
    console.print(f"Report: {report}  (`sluice report {stats.run_id} --open` opens it)")

"""The run history: one `run.json` per run under the runs directory, and reading it back.

Every action records its run (status, times, rows and bytes per operator, shuffle and
spill totals, bad records, the error settings in force, the physical plan) so that
`sluice runs` can list past runs and `sluice runs show RUN`, `sluice bad-records RUN` and
`sluice repro RUN` can find them by id. Writing it costs one small file per run.
"""

from __future__ import annotations

import json
import os
import socket

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SluiceError
from ..private_files import make_private_dir, open_private
from .events import EVENTS_FILE
from .stats import RunStats

RUN_FILE = "run.json"
DEAD_LETTERS_DIR = "bad_records"


def record_run(run_dir: str, stats: RunStats, config, resumable: bool = False, earlier: list[dict] = ()) -> None:
    """Write the run's run.json; `resumable`: its plan is saved in a run store (`sluice resume` can finish it);
    `earlier`: the earlier attempts at a resumed run (`attempts_so_far`), whose start is the run's start and
    whose time counts in its wall time."""
    make_private_dir(run_dir)
    document = stats.to_dict()
    attempts = [*earlier, {"started_at": stats.started_at, "wall_s": stats.wall_s, "status": stats.status}]
    document.update(
        started_at=attempts[0]["started_at"],
        wall_s=sum(attempt["wall_s"] or 0 for attempt in attempts),
        attempts=attempts,
        settings={"on_error": config.on_error, "max_bad_records": config.max_bad_records,
                  "memory_budget": config.memory_budget, "num_threads": config.num_threads},
        plan=stats.physical_plan.explain() if stats.physical_plan is not None else None,
        pid=os.getpid(), host=socket.gethostname(),
        resumable=resumable,
    )
    path = os.path.join(run_dir, RUN_FILE)
    with open_private(path + ".tmp", "w") as f:
        f.write(json.dumps(document, default=str))  # dumps encodes in C; dump streams through Python
    os.replace(path + ".tmp", path)


def attempts_so_far(run_dir: str, run: dict) -> list[dict]:
    """The attempts at a run that stopped (run.json as `run`), for the attempt that resumes it: one that
    crashed ran until its last event and is marked "crashed"."""
    attempts = [dict(a) for a in run.get("attempts") or
                [{"started_at": run.get("started_at", 0), "wall_s": run.get("wall_s", 0), "status": run.get("status")}]]
    if attempts and attempts[-1].get("status") == "running":
        attempts[-1].update(status="crashed", wall_s=crashed_wall(run_dir, attempts[-1]))
    return attempts


def crashed_wall(run_dir: str, attempt: dict) -> float:
    """How long an attempt that crashed ran: from its start to the last event it logged."""
    last = last_event_time(os.path.join(run_dir, EVENTS_FILE))
    return max(0.0, last - attempt.get("started_at", last)) if last is not None else 0.0


def last_event_time(path: str, tail_bytes: int = 65536) -> float | None:
    """The time of the last complete event in an event log (read from its end), or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - tail_bytes))
            lines = f.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines[1:] if size > tail_bytes else lines):
        try:
            return float(json.loads(line)["ts"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def crashed_run(run_dir: str, run: dict) -> dict:
    """`run` (a run.json whose process is gone while it said "running") with what its files say since: the
    time it ran until its last event, and the bad records it had written."""
    attempts = attempts_so_far(run_dir, run)
    return {**run, "attempts": attempts, "wall_s": sum(a["wall_s"] or 0 for a in attempts),
            "bad_records": max(run.get("bad_records") or 0, dead_letter_count(run_dir))}


def read_dead_letters(directory: str, columns: list[str] | None = None) -> pa.Table | None:
    """A run's dead-letter records (its finished part files; a part a kill cut short is hidden), or None."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".parquet") and not n.startswith("."))
    except OSError:
        return None
    if not names:
        return None
    tables = [pq.read_table(os.path.join(directory, n)) for n in names]
    table = pa.concat_tables(tables, promote_options="default")  # parts written before a column was added
    return table.select(columns) if columns else table


def dead_letter_count(run_dir: str) -> int:
    """Records in a run's dead-letter dataset (from the Parquet footers)."""
    directory = os.path.join(run_dir, DEAD_LETTERS_DIR)
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".parquet") and not n.startswith(".")]
    except OSError:
        return 0
    total = 0
    for name in names:
        try:
            total += pq.ParquetFile(os.path.join(directory, name)).metadata.num_rows
        except (OSError, ValueError):
            continue
    return total


def list_runs(runs_dir: str) -> list[dict]:
    """Every recorded run, newest first."""
    if not os.path.isdir(runs_dir):
        return []
    runs = []
    for name in os.listdir(runs_dir):
        path = os.path.join(runs_dir, name, RUN_FILE)
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    runs.append(json.load(f))
            except (OSError, ValueError):
                continue
    return sorted(runs, key=lambda r: r.get("started_at", 0), reverse=True)


def run_directory(runs_dir: str, run_id: str) -> str:
    """The directory of run `run_id` (a unique prefix is enough), or an error listing recent runs."""
    exact = os.path.join(runs_dir, run_id)
    if os.path.isdir(exact):
        return exact
    matches = [n for n in os.listdir(runs_dir) if n.startswith(run_id) and not n.startswith("_")] if os.path.isdir(runs_dir) else []
    if len(matches) == 1:
        return os.path.join(runs_dir, matches[0])
    recent = ", ".join(r["run_id"] for r in list_runs(runs_dir)[:5]) or "none"
    problem = "matches several runs" if matches else "is not a run"
    raise SluiceError(f"{run_id!r} {problem} in {runs_dir}. Recent runs: {recent}. "
                      f"`sluice runs` lists them; set SLUICE_RUNS_DIR if the runs live elsewhere.")

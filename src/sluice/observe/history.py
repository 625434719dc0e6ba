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

from ..errors import SluiceError
from .stats import RunStats

RUN_FILE = "run.json"


def record_run(run_dir: str, stats: RunStats, config, resumable: bool = False) -> None:
    """Write the run's run.json; `resumable`: its plan is saved in a run store (`sluice resume` can finish it)."""
    os.makedirs(run_dir, exist_ok=True)
    document = stats.to_dict()
    document.update(
        started_at=stats.started_at,
        settings={"on_error": config.on_error, "max_bad_records": config.max_bad_records,
                  "memory_budget": config.memory_budget, "num_threads": config.num_threads},
        plan=stats.physical_plan.explain() if stats.physical_plan is not None else None,
        pid=os.getpid(), host=socket.gethostname(),
        resumable=resumable,
    )
    path = os.path.join(run_dir, RUN_FILE)
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(document, default=str))  # dumps encodes in C; dump streams through Python
    os.replace(path + ".tmp", path)


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

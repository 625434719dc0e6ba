"""`sluice resume` finishes a crashed run; `sluice gc` removes old runs' directories.

Resume loads the run's pickled plan, refuses when an input changed since the run started,
and runs the plan again under the same run id with the run's store: exchanges whose map
side finished are restored, write tasks that finished are skipped, and the commit, which
is idempotent per run id, publishes each row exactly once. A run that crashed after its
commit point is only finished (intent file, `_SUCCESS`, staging), not run again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import time

import psutil

from ..errors import ResumeError
from ..reliability.run_store import RunStore, check_inputs

FINISHED = ("succeeded", "failed", "stopped early", "preempted")


def _read_run(run_dir: str) -> dict:
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def is_alive(run: dict) -> bool:
    """Whether the process that recorded a 'running' run still runs (on this host; elsewhere: assume so)."""
    if run.get("status") != "running":
        return False
    if run.get("host") != socket.gethostname():
        return True
    pid = run.get("pid")
    return bool(pid) and pid != os.getpid() and psutil.pid_exists(pid)


def resume(run_id: str, runs_dir: str | None = None, filesystems=()):
    """Finish run `run_id` after a crash; returns its WriteResult. See the module docstring.

    `filesystems`: pyarrow filesystems to use in place of the run's own of the same type (S3FileSystem...),
    whose credentials the run store does not keep; without them they take credentials from the environment."""
    from .. import config as config_module
    from ..engine.context import RunContext
    from ..observe.history import attempts_so_far, run_directory
    from .run import write
    config = config_module.current()
    run_dir = run_directory(runs_dir or config.runs_dir, run_id)
    run_id = os.path.basename(run_dir.rstrip("/"))
    config = dataclasses.replace(config, runs_dir=os.path.dirname(run_dir.rstrip("/")))
    run = _read_run(run_dir)
    if run.get("status") == "succeeded":
        raise ResumeError(f"Run {run_id} already succeeded; there is nothing to resume. `sluice runs show {run_id}` "
                          f"describes it.")
    if is_alive(run):
        raise ResumeError(f"Run {run_id} is still running (pid {run.get('pid')} on {run.get('host')}). Wait for it, "
                          f"or stop it, before resuming.")
    context = RunContext(config, run_id=run_id, resumed=True, earlier_attempts=attempts_so_far(run_dir, run))
    store = context.store = RunStore.for_runner(context.store_dir, config.runner)
    plan = store.load_plan(filesystems)
    check_inputs(store, run_id, plan)
    context.dead_letters.adopt_earlier()  # the earlier attempts' bad records stay, and count
    return write(plan.input, plan.sink, context)


def collect_garbage(runs_dir: str, older_than_s: float, dry_run: bool = False) -> list[str]:
    """Remove the directories of runs that ended more than `older_than_s` ago; never a live run.

    A crashed run (status 'running' whose process is gone) counts as ended when it started.
    Returns the run ids removed (or that would be, with dry_run).
    """
    if not os.path.isdir(runs_dir):
        return []
    cutoff = time.time() - older_than_s
    removed = []
    for name in sorted(os.listdir(runs_dir)):
        directory = os.path.join(runs_dir, name)
        if name.startswith("_") or not os.path.isdir(directory):
            continue
        run = _read_run(directory)
        if is_alive(run):
            continue
        ended = run.get("started_at", 0) + (run.get("wall_s") or 0) if run else os.path.getmtime(directory)
        if ended > cutoff:
            continue
        removed.append(name)
        if not dry_run:
            shutil.rmtree(directory, ignore_errors=True)
    return removed

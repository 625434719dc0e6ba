"""The run store: what a write run keeps in its run directory so that a crashed run can finish.

A run that writes (write_parquet, write_csv, write_json) keeps, under
`<runs dir>/<run id>/`:

- `plan.pkl`: the logical plan, cloudpickled (user functions included), for `sluice resume`;
- `inputs.json`: every input file with its size and modification time, as the plan saw them;
- `tasks.jsonl`: one line per completed write task (its key and the files it staged);
- `exchanges/<key>/`: each exchange's map output, persisted once its map side finished
  (`ExchangeBuffer.persist`); the key is a hash of the plan below the exchange, so a
  re-planned run only ever restores an exchange that the same plan produced;
- `run.json` (observe/history.py) and `events.jsonl` (observe/events.py).

Resuming re-plans the pickled plan under the same run id: an exchange whose files are
complete is restored instead of recomputed, a write task whose staged files are logged and
still there is skipped, and the commit is idempotent per run id. When the run succeeds its
exchange files are deleted; `sluice gc` removes old run directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from typing import Any, Iterator

from ..errors import ResumeError, SluiceError

PLAN_FILE = "plan.pkl"
INPUTS_FILE = "inputs.json"
TASKS_FILE = "tasks.jsonl"
EXCHANGES_DIR = "exchanges"
MAX_PICKLED_DATA = 16 * 1024 * 1024  # in-memory source data a saved plan may carry


class RunStore:
    """The checkpoint files of one run; shared by every stage of the run, used from pool threads."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self._lock = threading.Lock()
        self._completed: dict[str, list[dict]] | None = None

    # ------------------------------------------------------------ start of a run

    def save_plan(self, plan) -> str | None:
        """Pickle the plan for resume; return why it cannot be saved, or None."""
        import cloudpickle
        in_memory = _in_memory_bytes(plan)
        if in_memory > MAX_PICKLED_DATA:
            return (f"it reads {in_memory / 2**20:,.0f} MiB of in-memory data (from_arrow/pandas/polars), which "
                    f"a crashed process takes with it; write the data to Parquet first to make it resumable")
        os.makedirs(self.run_dir, exist_ok=True)
        try:
            payload = cloudpickle.dumps(plan)
        except Exception as exc:  # noqa: BLE001 - anything unpicklable in a user's plan
            return f"{type(exc).__name__}: {exc}"
        _write_atomic(os.path.join(self.run_dir, PLAN_FILE), payload)
        _write_atomic(os.path.join(self.run_dir, INPUTS_FILE),
                      json.dumps(input_fingerprints(plan), indent=1).encode())
        return None

    def load_plan(self):
        import cloudpickle
        path = os.path.join(self.run_dir, PLAN_FILE)
        if not os.path.isfile(path):
            raise ResumeError(f"Run directory {self.run_dir} has no {PLAN_FILE}: only runs that write output "
                              f"(write_parquet/csv/json) with checkpoint=True can be resumed. Run the job again.")
        with open(path, "rb") as f:
            return cloudpickle.load(f)

    # ------------------------------------------------------------ task completion log

    def completed(self) -> dict[str, list[dict]]:
        """Write tasks finished by earlier attempts: key -> the files they staged."""
        if self._completed is None:
            from ..observe.events import read_json_lines
            self._completed = {record["key"]: record["written"]
                               for record in read_json_lines(os.path.join(self.run_dir, TASKS_FILE))}
        return self._completed

    def finished_writes(self, items: list, key, stats, stage_id: int) -> tuple[list, list]:
        """Split a write stage's items into those still to run and the outputs (file lists) of those an
        earlier attempt finished, which are skipped."""
        from ..plan.operators import written_table
        done = self.completed()
        todo, skipped = [], []
        for item in items:
            entries = done.get(key(item))
            if entries is None:
                todo.append(item)
                continue
            skipped.append(written_table(entries))
            stats.emit("checkpoint", stage=stage_id, what="task skipped", detail=key(item))
        if skipped:
            stats.note(f"stage {stage_id}: {len(skipped)} of {len(items)} write task(s) were finished by an "
                       f"earlier attempt at this run and were skipped")
        return todo, skipped

    def log_task(self, key: str, written: list[dict]) -> None:
        line = json.dumps({"key": key, "written": written}) + "\n"
        with self._lock:
            os.makedirs(self.run_dir, exist_ok=True)
            with open(os.path.join(self.run_dir, TASKS_FILE), "a") as f:
                f.write(line)

    def forget_tasks(self, keys: set[str]) -> None:
        """Drop logged tasks whose staged files are gone (a crash mid-commit moved or removed them)."""
        completed = self.completed()
        for key in keys:
            completed.pop(key, None)

    # ------------------------------------------------------------ exchanges

    def exchange_dir(self, key: str) -> str:
        return os.path.join(self.run_dir, EXCHANGES_DIR, key)

    def finish(self, keep_exchanges: bool = False) -> None:
        """The run succeeded: its exchange files are no longer needed, unless asked to keep them."""
        if not keep_exchanges:
            shutil.rmtree(os.path.join(self.run_dir, EXCHANGES_DIR), ignore_errors=True)


def exchange_key(*parts: Any) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:20]


def _write_atomic(path: str, payload: bytes) -> None:
    with open(path + ".tmp", "wb") as f:
        f.write(payload)
    os.replace(path + ".tmp", path)


# ------------------------------------------------------------ input fingerprints

def _sources(plan) -> Iterator[Any]:
    from ..plan.logical import Scan
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, Scan):
            yield node.source
        stack.extend(node.children)


def _file_sources(plan) -> Iterator[Any]:
    return (s for s in _sources(plan) if hasattr(getattr(s, "files", None), "requested"))


def _in_memory_bytes(plan) -> int:
    return sum(s.table.nbytes for s in _sources(plan) if getattr(s, "table", None) is not None)


def input_fingerprints(plan) -> list[dict]:
    """Per file-based source: the paths it was given and each file's size and mtime."""
    return [{"requested": list(source.files.requested),
             "files": {f.path: [f.size, f.mtime_ns] for f in source.files.files}}
            for source in _file_sources(plan)]


def check_inputs(run_dir: str, plan) -> None:
    """Refuse to resume when an input changed since the run started: files added, removed or rewritten."""
    from ..io.files import resolve_files
    with open(os.path.join(run_dir, INPUTS_FILE)) as f:
        recorded = json.load(f)
    sources = list(_file_sources(plan))
    problems: list[str] = []
    for source, before in zip(sources, recorded):
        try:
            now = resolve_files(before["requested"], source.files.filesystem)
            current = {f.path: [f.size, f.mtime_ns] for f in now.files}
        except SluiceError as exc:
            problems.append(f"{before['requested']}: {exc}")
            continue
        for path in sorted(set(before["files"]) - set(current)):
            problems.append(f"{path} was removed")
        for path in sorted(set(current) - set(before["files"])):
            problems.append(f"{path} was added")
        for path in sorted(set(current) & set(before["files"])):
            (old_size, old_mtime), (size, mtime) = before["files"][path], current[path]
            if old_size != size:
                problems.append(f"{path} changed size ({old_size:,} -> {size:,} bytes)")
            elif old_mtime != mtime:
                problems.append(f"{path} was modified (mtime changed)")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ResumeError(
            f"Cannot resume run {os.path.basename(run_dir)}: its input changed after the run started: {shown}. "
            f"Resuming would mix results computed from the old and the new data. Run the job again from the "
            f"start (a new run id) to process the current input.")

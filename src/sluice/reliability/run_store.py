"""The run store: what a write run keeps so that a crashed run can finish.

A run that writes (write_parquet, write_csv, write_json) keeps, in its run directory
`<runs dir>/<run id>/`, or under `<checkpoint_dir>/<run id>/` when that is set (a local path or
a URI such as s3://bucket/prefix, reached through pyarrow.fs; the local runner needs a local
path, a Ray cluster a shared one):

- `plan.pkl`: the logical plan, cloudpickled (user functions included), for `sluice resume`;
- `inputs.json`: every input file with its size and modification time, as the plan saw them;
- `tasks.jsonl`: one line per completed write task (its key and the files it staged);
- `exchanges/<key>/`: each exchange's map output, kept task by task as the map side runs
  (backends/local/exchange_checkpoint.py, backends/ray/persist.py); the key is a hash of the plan
  below the exchange, so a re-planned run only ever restores an exchange that the same plan
  produced.

`run.json` (observe/history.py), `events.jsonl` (observe/events.py) and the dead letters are
the run's record, always in the run directory.

Resuming re-plans the pickled plan under the same run id: an exchange whose files are
complete is restored instead of recomputed, a write task whose staged files are logged and
still there is skipped, and the commit is idempotent per run id. When the run succeeds its
exchange files are deleted; `sluice gc` removes old run directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import pyarrow.fs as pafs

from ..errors import ResumeError, SluiceError
from ..private_files import make_private_dir, open_private
from ..kernels import user_code
from .filesystems import dumps_plan, filesystems_given

PLAN_FILE = "plan.pkl"
INPUTS_FILE = "inputs.json"
TASKS_FILE = "tasks.jsonl"
EXCHANGES_DIR = "exchanges"
MAX_PICKLED_DATA = 16 * 1024 * 1024  # in-memory source data a saved plan may carry


@dataclass(frozen=True)
class Location:
    """A directory of the run store on some filesystem; it pickles, so tasks on other machines reach it too.

    A local file is written whole through a rename; an object store PUT is whole by itself. An
    object store has no append: a log there is rewritten whole (only the driver writes the logs,
    one short line per task).
    """

    fs: pafs.FileSystem
    root: str

    @classmethod
    def of(cls, directory: str) -> Location:
        from ..io.files import filesystem_for
        return cls(*filesystem_for(directory))

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, name: str) -> str:
        return posixpath.join(self.root, name)

    def existing(self, names) -> set[str]:
        names = list(names)
        infos = self.fs.get_file_info([self.path(n) for n in names]) if names else []
        return {n for n, info in zip(names, infos) if info.type == pafs.FileType.File}

    def read_bytes(self, name: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path(name)) as f:
                return f.read()
        except (FileNotFoundError, OSError):
            return None

    def read_text(self, name: str) -> str | None:
        data = self.read_bytes(name)
        return None if data is None else data.decode()

    def write(self, name: str, payload: bytes) -> None:
        if self.local:  # private to the user (0700 directories, 0600 files): run stores hold raw records
            make_private_dir(os.path.dirname(self.path(name)))
            with open_private(self.path(name + ".tmp"), "wb") as f:
                f.write(payload)
            os.replace(self.path(name + ".tmp"), self.path(name))
        else:
            with self.fs.open_output_stream(self.path(name)) as f:
                f.write(payload)

    def append_line(self, name: str, line: str) -> None:
        if self.local:
            make_private_dir(os.path.dirname(self.path(name)))
            with open_private(self.path(name), "ab") as f:
                f.write(line.encode())
        else:
            self.write(name, (self.read_bytes(name) or b"") + line.encode())

    def json_lines(self, name: str) -> list[dict]:
        """The records of a JSON-lines log ([] if there is none); a line a kill cut short is skipped."""
        records = []
        for line in (self.read_text(name) or "").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def delete(self, name: str) -> None:
        try:
            self.fs.delete_dir(self.path(name))
        except (FileNotFoundError, OSError):
            pass


class RunStore:
    """The checkpoint files of one run; shared by every stage of the run, used from pool threads.

    `run_dir`: the run's directory, or wherever checkpoint_dir puts its store: a local path (shared
    storage for a Ray cluster) or a URI such as s3://bucket/prefix/<run id>.
    """

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.location = Location.of(run_dir)
        self._lock = threading.Lock()
        self._completed: dict[str, list[dict]] | None = None

    @classmethod
    def for_runner(cls, run_dir: str, runner: str) -> RunStore:
        store = cls(run_dir)
        if runner == "local" and not store.location.local:
            raise SluiceError(
                f"checkpoint_dir puts this run's store at {run_dir}, which the local runner cannot use: it keeps its "
                f"exchanges as local files that it reads back in place. Set checkpoint_dir (SLUICE_CHECKPOINT_DIR) to "
                f"a local or mounted path, or leave it unset, or run on Ray (runner='ray'), which keeps the run store "
                f"on any filesystem pyarrow reaches (s3://, gs://, a shared path).")
        return store

    # ------------------------------------------------------------ start of a run

    def save_plan(self, plan) -> str | None:
        """Pickle the plan for resume; return why it cannot be saved, or None."""
        in_memory = _in_memory_bytes(plan)
        if in_memory > MAX_PICKLED_DATA:
            return (f"it reads {in_memory / 2**20:,.0f} MiB of in-memory data (from_arrow/pandas/polars), which "
                    f"a crashed process takes with it; write the data to Parquet first to make it resumable")
        try:
            payload = dumps_plan(plan)  # never with a filesystem's credentials (filesystems.py)
        except Exception as exc:  # noqa: BLE001 - anything unpicklable in a user's plan
            return f"{type(exc).__name__}: {exc}"
        self.location.write(PLAN_FILE, payload)
        self.location.write(INPUTS_FILE, json.dumps(input_fingerprints(plan), indent=1).encode())
        return None

    def load_plan(self, filesystems=()):
        """The saved plan; `filesystems` replace the plan's filesystems of their types (for their credentials)."""
        payload = self.location.read_bytes(PLAN_FILE)
        if payload is None:
            raise ResumeError(f"The run store {self.run_dir} has no {PLAN_FILE}: only runs that write output "
                              f"(write_parquet/csv/json) with checkpoint=True can be resumed; a run that kept its "
                              f"store under checkpoint_dir is resumed with the same SLUICE_CHECKPOINT_DIR. Run the job "
                              f"again.")
        with filesystems_given(filesystems):
            return user_code.loads(payload)

    # ------------------------------------------------------------ task completion log

    def completed(self) -> dict[str, dict]:
        """Write tasks finished by earlier attempts: key -> their log record (the files they staged, "written",
        and their operator statistics, "ops")."""
        if self._completed is None:
            self._completed = {record["key"]: record for record in self.location.json_lines(TASKS_FILE)}
        return self._completed

    def staged(self) -> dict[str, list[dict]]:
        """Write tasks finished by earlier attempts: key -> the files they staged."""
        return {key: record["written"] for key, record in self.completed().items()}

    def finished_write(self, key: str | None, stats, stage_id: int):
        """The output (file list) of the write task `key` when an earlier attempt finished it, else None. Its
        operator statistics are counted as this attempt's, so the run's totals and error budget cover it."""
        from ..physical.operators import written_table
        record = self.completed().get(key) if key is not None else None
        if record is None:
            return None
        for op in record.get("ops", []):
            stats.record(*op)
        stats.emit("checkpoint", stage=stage_id, what="task skipped", detail=key)
        return written_table(record["written"])

    @staticmethod
    def unfinished_maps(items: list, key, completed: set[str], stats, stage_id: int) -> list:
        """A resumed map stage's items whose output is not in the run store yet; says how many were restored."""
        todo = [item for item in items if key(item) not in completed]
        if len(todo) < len(items):
            stats.emit("checkpoint", stage=stage_id, what="map tasks restored",
                       detail=f"{len(items) - len(todo)} of {len(items)}")
            stats.note(f"stage {stage_id}: {len(items) - len(todo)} of {len(items)} map task(s) were finished by "
                       f"an earlier attempt at this run; their output was read back from the run store")
        return todo

    def log_task(self, key: str, written: list[dict], ops: list, **extra) -> None:
        """Log a finished write task: its key, the files it staged, its operator statistics, and `extra` (what a
        stream task took of its upstream's outputs, stage_run.py)."""
        line = json.dumps({"key": key, "written": written, "ops": [list(op) for op in ops], **extra}) + "\n"
        with self._lock:
            self.location.append_line(TASKS_FILE, line)

    def forget_tasks(self, keys: set[str]) -> None:
        """Drop logged tasks whose staged files are gone (a crash mid-commit moved or removed them)."""
        completed = self.completed()
        for key in keys:
            completed.pop(key, None)

    # ------------------------------------------------------------ exchanges

    def exchange_dir(self, key: str) -> str:
        return posixpath.join(self.run_dir, EXCHANGES_DIR, key)

    def finish(self, keep_exchanges: bool = False) -> None:
        """The run succeeded: its exchange files are no longer needed, unless asked to keep them."""
        if not keep_exchanges:
            self.location.delete(EXCHANGES_DIR)


def exchange_key(*parts: Any) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:20]


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


def _absolute(requested, filesystem) -> list[str]:
    """Local paths as absolute ones (the listing is: a resume from another directory finds the same files)."""
    if filesystem is not None and not isinstance(filesystem, pafs.LocalFileSystem):
        return list(requested)
    return [p if "://" in p else os.path.abspath(os.path.expanduser(p)) for p in requested]


def input_fingerprints(plan) -> list[dict]:
    """Per file-based source: the paths it was given and each file's size and mtime."""
    return [{"requested": _absolute(source.files.requested, source.files.filesystem),
             "files": {f.path: [f.size, f.mtime_ns] for f in source.files.files}}
            for source in _file_sources(plan)]


def check_inputs(store: RunStore, run_id: str, plan) -> None:
    """Refuse to resume when an input changed since the run started: files added, removed or rewritten."""
    from ..io.files import resolve_files
    recorded = json.loads(store.location.read_text(INPUTS_FILE) or "[]")
    sources = list(_file_sources(plan))
    problems: list[str] = []
    for source, before in zip(sources, recorded):
        before = dict(before, files=dict(zip(_absolute(before["files"], source.files.filesystem),
                                             before["files"].values())))
        try:
            now = resolve_files(_absolute(before["requested"], source.files.filesystem), source.files.filesystem)
            current = dict(zip(_absolute([f.path for f in now.files], source.files.filesystem),
                               ([f.size, f.mtime_ns] for f in now.files)))
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
            f"Cannot resume run {run_id}: its input changed after the run started: {shown}. "
            f"Resuming would mix results computed from the old and the new data. Run the job again from the "
            f"start (a new run id) to process the current input.")

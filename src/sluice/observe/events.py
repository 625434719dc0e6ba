"""The per-run event log, `events.jsonl`: what ran where and when, one JSON object per line.

A failure at 03:12 is traced to its block by finding the task whose start..end interval
holds that time: every task event carries its block id, the source files and row ranges
it covers, the worker's pid and host, and its attempt number. A sampler adds the run's
memory, admission and progress every half second, which the HTML report plots and the
Prometheus endpoint serves. Lines are flushed as they are written, so the log of a run
that was killed is complete up to the kill.

Every event has `ts` (Unix seconds) and `event`. The events and their fields:

- `run_start`: run_id, pid, host, threads, memory_budget, resumed (bool)
- `stage_start`: stage, name, tasks_total (None when not known up front)
- `task_start`: stage, block ("s<stage>-t<index>"; "s<stage>-d<index>" with `driver: true` for a block
  the driver made or handed on without a task: a fused query's slice, a union's or limit's block), attempt,
  pid, host, thread,
  sources ([{"file", "first_row", "end_row"}]; rows are None when the task reads a whole file),
  partitions (the exchange partitions a reduce task reads, else absent)
- `task_end`: stage, block, attempt, status ("ok" | "failed" | "skipped"), rows, bytes,
  wall_s, error (for a failed task: "Type: message")
- `retry`: stage (or None), what, attempt, error
- `bad_records`: stage, operator, block, count
- `exchange`: stage, partitions (bytes per partition), decisions
- `note`: text (an adaptive decision or remark, as in `stats().notes`)
- `checkpoint`: stage, what ("exchange saved" | "exchange restored" | "task skipped"), detail
- `sample`: rss_bytes (this process and its children), reserved_bytes, budget_bytes,
  stages ({stage: {"name", "rows", "tasks_done", "tasks_total", "in_flight", "state"}})
- `stage_end`: stage, rows, tasks
- `run_end`: status, wall_s, error
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any, Callable

from ..private_files import make_private_dir, open_private

EVENTS_FILE = "events.jsonl"
SAMPLE_INTERVAL_S = 0.5

Listener = Callable[[dict], None]

_running = threading.local()


def current_block() -> tuple[int | None, str | None]:
    """The stage and block the calling thread is working on, for events raised deep inside a task."""
    return getattr(_running, "stage", None), getattr(_running, "block", None)


def set_current_block(stage: int | None, block: str | None) -> None:
    _running.stage, _running.block = stage, block


class EventLog:
    """Appends events to `<run dir>/events.jsonl` and hands each to the listeners (metrics)."""

    def __init__(self, path: str | None):
        self.path = path
        self._file = None
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.host = socket.gethostname()
        self.pid = os.getpid()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": time.time(), "event": event, **fields}
        line = json.dumps(record, default=str)
        with self._lock:
            if self.path is not None:
                if self._file is None:
                    try:
                        make_private_dir(os.path.dirname(self.path))
                        self._file = open_private(self.path, "a", buffering=1)
                    except OSError:
                        self.path = None  # an unwritable runs directory must not fail the run
                if self._file is not None:
                    self._file.write(line + "\n")
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - an observer never breaks the run
                pass

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_events(path: str) -> list[dict]:
    """The events of a run, in order; a line cut short by a crash is skipped."""
    return read_json_lines(path)


def read_json_lines(path: str) -> list[dict]:
    """The records of an append-only JSON-lines log (events, task logs); [] if there is none yet.
    A line a kill cut short is skipped."""
    if not os.path.isfile(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def run_sample(stats, budget, with_workers: bool) -> dict:
    """A `sample` event's fields: memory (the process tree's RSS with UDF workers, what the
    budget has admitted) and each stage's progress. `budget` has `reserved` and `limit` bytes."""
    stages = {stage.stage_id: {"name": stage.name, "rows": stage.rows_done, "tasks_done": stage.tasks_done,
                               "tasks_total": stage.tasks_total, "in_flight": stage.in_flight, "state": stage.state}
              for stage in list(stats.stages.values())}
    return {"rss_bytes": process_tree_rss(children=with_workers), "reserved_bytes": budget.reserved,
            "budget_bytes": budget.limit, "stages": stages}


def process_tree_rss(children: bool = True) -> int:
    """Resident memory of this process and, with children, of its descendants (UDF workers), in bytes.

    On Linux the descendants are found through /proc/<pid>/task/<tid>/children, a read per thread;
    psutil's own walk reads the stat file of every process on the machine.
    """
    import psutil
    try:
        total = 0
        for pid in _process_tree(os.getpid()) if children else [os.getpid()]:
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
        return total
    except psutil.Error:
        return 0


def _process_tree(root: int) -> list[int]:
    """root and every descendant of it."""
    if not os.path.exists(f"/proc/{root}/task/{root}/children"):  # not Linux, or a kernel without the file
        import psutil
        return [root] + [child.pid for child in psutil.Process(root).children(recursive=True)]
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # it exited
        for tid in threads:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    pending += [int(child) for child in f.read().split()]
            except OSError:
                continue
    return found


class Sampler:
    """A daemon thread that emits a `sample` event every interval while a run is going."""

    def __init__(self, events: EventLog, sample: Callable[[], dict], interval: float = SAMPLE_INTERVAL_S):
        self.events = events
        self.sample = sample
        self.interval = interval
        self._stop = threading.Event()
        self._failed = False
        self._thread = threading.Thread(target=self._loop, name="sluice-sampler", daemon=True)

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            self._emit()
            if self._stop.wait(self.interval):
                return

    def _emit(self) -> None:
        try:
            self.events.emit("sample", **self.sample())
        except Exception:  # noqa: BLE001 - a failed sample must not fail the run, but is not hidden
            if not self._failed:
                self._failed = True
                logging.getLogger("sluice").warning(
                    "sluice: the run sampler failed; this run's memory and progress samples are missing",
                    exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._emit()  # one last sample, so even a short run has its end state

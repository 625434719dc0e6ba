"""What a UDF worker pool hands back: task results, worker deaths, and errors built from worker replies.

Why this module exists: these are the types and messages the rest of sluice sees from the
process pool (workers.py): the executor reads `TaskResult`, the reliability layer reads the
errors' attributes, a memory-profile store reads `peak_rss_bytes`, and OOM handling reads
`WorkerDeath`. Keeping them apart from the pool's scheduling keeps both readable.

A worker reports a failure as a dict of builtins (udf_errors.describe_exception): the
exception's type name, message, traceback text with sluice's leading frames trimmed, the
pickled exception when it pickles, and the worker's pid. The errors built here put that
traceback in their message, after a one-line summary, and keep each part as an attribute.
"""

from __future__ import annotations

import signal
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

import pyarrow as pa

from ...errors import UdfOutputError, UdfTaskError, WorkerCrashedError, WorkerError
from ...kernels.udf_errors import traceback_block, unpickle_exception
from .forkserver import exit_signal


@dataclass(frozen=True)
class TaskResult:
    table: pa.Table  # zero-copy over the (already unlinked) result file
    task_id: int
    rows_in: int
    rows_out: int
    input_bytes: int  # Arrow IPC bytes written for the input, and by the worker for the output
    output_bytes: int
    worker_pid: int
    worker_slot: int
    attempts: int  # 1 unless a worker died running it
    compute_s: float  # in the worker: map the input, convert, call the UDF, convert back, write
    cpu_s: float  # the worker's CPU time for the same
    rss_before_bytes: int  # worker RSS when the task started
    peak_rss_bytes: int  # worker peak RSS during the task (udf_worker.py says exactly what it counts)
    peak_rss_exact: bool  # False: a lifetime peak (ru_maxrss), not the task's own
    round_trip_s: float  # in this process: from writing the input to the result table mapped


@dataclass(frozen=True)
class WorkerDeath:
    worker_pid: int
    worker_slot: int
    returncode: int | None  # negative: killed by that signal; None: unknown
    signal: int | None
    task_id: int | None  # the task it was running (None: it died idle)
    task_rows: int | None
    attempt: int | None  # which attempt of that task died with it
    last_rss_bytes: int  # last RSS known before it died (sampled every 100 ms while busy)
    peak_sampled_rss_bytes: int  # highest RSS sampled during that task
    cgroup_oom_kills: int | None  # OOM kills in this cgroup since the pool started (None: unknown)

    @property
    def likely_oom(self) -> bool:
        """SIGKILL is what the OOM killer sends; a nonzero cgroup_oom_kills makes it near certain."""
        return self.signal == signal.SIGKILL

    def describe(self) -> str:
        how = (f"killed by {signal.Signals(self.signal).name}" if self.signal else
               f"exited with status {self.returncode}" if self.returncode is not None else "exited")
        task = (f"while running task {self.task_id} ({self.task_rows} rows, attempt {self.attempt})"
                if self.task_id is not None else "while idle")
        oom = f"; the cgroup counted {self.cgroup_oom_kills} OOM kill(s)" if self.cgroup_oom_kills else ""
        return (f"UDF worker pid {self.worker_pid} {how} {task}; last known RSS "
                f"{self.last_rss_bytes / 2**20:.0f} MiB{oom}")


def task_error(info: dict, what: str, task_id: int, rows: int, offset: int = 0,
               block_rows: int | None = None) -> BaseException:
    """The error for a task the worker reported failed: the user's, sluice's own, or the worker's.

    `offset` and `block_rows`: where the task's rows lie in the block it was cut from, if any."""
    if info.get("sluice"):
        return unpickle_exception(info.get("pickled")) or UdfOutputError(info["message"])
    batch_rows = info.get("rows", rows)
    total = block_rows or rows
    where = f"a block of {rows} rows"
    if batch_rows != total:
        first = offset + info.get("offset", 0)
        kind = " (one batch)" if batch_rows != rows else ""
        where = f"rows {first} to {first + batch_rows - 1}{kind} of a block of {total} rows"
    text = info.get("traceback", "")
    if info.get("kind") == "internal":
        return WorkerError(f"A worker of map_batches {what} failed on {where}: {info['type']}: "
                           f"{info['message']}{traceback_block(text)}")
    error = UdfTaskError(f"map_batches {what} raised {info['type']}: {info['message']}\n  while processing "
                         f"{where} in worker process {info.get('pid')}.{traceback_block(text)}",
                         exc_type=info["type"], exc_message=info["message"], remote_traceback=text,
                         worker_pid=info.get("pid"), task_id=task_id, rows=rows)
    error.__cause__ = unpickle_exception(info.get("pickled"))
    return error


def crash_error(what: str, rows: int, deaths: list[WorkerDeath]) -> WorkerCrashedError:
    last = deaths[-1]
    hint = (" SIGKILL is what the out-of-memory killer sends: lower concurrency or batch_size, or give the "
            "UDF more memory." if last.likely_oom else "")
    return WorkerCrashedError(f"map_batches {what}: its worker process died {len(deaths)} times running a block "
                              f"of {rows} rows (last: {last.describe()}).{hint}", deaths)


def exit_text(returncode: int | None) -> str:
    sig = exit_signal(returncode)
    if sig:
        return f"it was killed by {signal.Signals(sig).name}"
    return f"it exited with status {returncode}" if returncode is not None else "it exited"


def settle(future: Future, result=None, exc: BaseException | None = None) -> None:
    """Complete a future unless its caller cancelled it meanwhile."""
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


def cgroup_oom_kills() -> int | None:
    """How many processes the OOM killer has killed in this cgroup (v2, else v1); None if unknown."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None

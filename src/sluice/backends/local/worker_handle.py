"""The sluice side of one UDF worker process: start it, talk to it, stop it, say how it died.

Why this module exists: the pool (workers.py) schedules tasks over many workers; everything
about one worker's process and channel lives here, so that the pool reads as scheduling.

The protocol, over a forkserver.Channel (small tuples; blocks travel as shm.py files):

    sluice -> worker   the boot dict; then ("task", id, in_path, out_path) ...; ("stop",)
    worker -> sluice   ("ready", pid, rss) or ("init_error", info, rss);
                       per task, in order: ("done", id, stats) or ("error", id, info, stats);
                       ("closed", info of an exception close() raised, or None)

A worker that dies shows as the end of its channel. While a task runs, the pool samples the
worker's RSS every `RSS_SAMPLE_S` (a psutil read, ~20 us) so that a death report can say
how much memory the worker had: the usual question after a SIGKILL is whether it was the
OOM killer.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import sys
import time
from concurrent.futures import Future
from typing import Any, Callable, Mapping

import psutil
import pyarrow as pa

from ...errors import UdfInitError, WorkerError
from ...kernels import user_code
from ...kernels.udf import check_udf_arguments
from .forkserver import Channel, WorkerProcess, exit_signal, start_worker
from .shm import overwrite_table, read_table, remove_file, write_table
from .worker_reports import TaskResult, WorkerDeath, exit_text

log = logging.getLogger("sluice.workers")
RSS_SAMPLE_S = 0.1
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # src/sluice
_WORKER_MODULE = __package__ + ".udf_worker"


def pack_udf(fn: Callable, batch_format: str, batch_size: int | None, fn_kwargs: Mapping[str, Any] | None,
             fn_constructor_args: tuple, fn_constructor_kwargs: Mapping[str, Any] | None,
             name: str | None = None) -> dict:
    """Check a UDF's options and pickle it once, for every worker's boot message."""
    is_class = check_udf_arguments(fn, batch_format, batch_size, fn_constructor_args, fn_constructor_kwargs)
    name = name or getattr(fn, "__qualname__", None) or type(fn).__name__
    what = f"{'class' if is_class else 'function'} {name}"
    try:
        payload = user_code.dumps((fn, dict(fn_kwargs or {}), tuple(fn_constructor_args),
                                  dict(fn_constructor_kwargs or {})))
    except Exception as exc:
        raise UdfInitError(
            f"map_batches {what} cannot be sent to worker processes: pickling it failed with "
            f"{type(exc).__name__}: {exc}\n  It (or its arguments) refers to something that cannot be pickled, "
            f"such as a lock, an open file or a connection. Create such things inside the function, or use a "
            f"class whose __init__ creates them once per worker.", exc_type=type(exc).__name__,
            exc_message=str(exc)) from exc
    return {"name": name, "what": what, "is_class": is_class, "batch_format": batch_format,
            "batch_size": batch_size, "payload": payload}


class Task:
    """One block's trip through the pool: its input file (written once, kept for retries), attempts, future."""

    __slots__ = ("attempts", "block_rows", "deaths", "dispatched_at", "future", "id", "in_bytes", "in_path", "offset",
                 "out_path", "rows", "started", "table")

    def __init__(self, task_id: int, table: pa.Table, future: Future, offset: int = 0, block_rows: int | None = None):
        self.id, self.table, self.rows, self.future = task_id, table, table.num_rows, future
        self.offset, self.block_rows = offset, block_rows  # where this slice lies in the block it was cut from
        self.attempts, self.deaths, self.started = 0, [], False
        self.in_path, self.in_bytes, self.out_path, self.dispatched_at = None, 0, None, 0.0

    def write_input(self, block_dir: str, what: str, spare: str | None = None) -> None:
        """Write the block to shared memory on the first attempt, over the `spare` file if given
        (an earlier input nothing points into any more); name this attempt's output file."""
        if self.in_path is None:
            path = spare or os.path.join(block_dir, f"in-{self.id}.arrow")
            try:
                self.in_bytes = overwrite_table(self.table, path) if spare else write_table(self.table, path)
            except Exception as exc:
                remove_file(path)
                raise WorkerError(f"Could not write a block of {self.rows} rows for map_batches {what} to "
                                  f"{block_dir}: {exc}. If that file system is full, make room or set "
                                  f"SLUICE_SHM_DIR to a larger one.") from exc
            self.in_path, self.table = path, None
        self.out_path = os.path.join(block_dir, f"out-{self.id}-{self.attempts}.arrow")
        self.dispatched_at = time.perf_counter()

    def result(self, worker: WorkerHandle, stats: dict) -> TaskResult:
        """Map the worker's output file (and unlink it) into a TaskResult."""
        table = read_table(self.out_path, unlink=True)
        return TaskResult(
            table=table, task_id=self.id, rows_in=stats["rows_in"], rows_out=stats["rows_out"],
            input_bytes=self.in_bytes, output_bytes=stats["output_bytes"], worker_pid=worker.pid,
            worker_slot=worker.slot, attempts=self.attempts + 1, compute_s=stats["compute_s"], cpu_s=stats["cpu_s"],
            rss_before_bytes=stats["rss_before"], peak_rss_bytes=stats["peak_rss"],
            peak_rss_exact=stats["peak_rss_exact"], round_trip_s=time.perf_counter() - self.dispatched_at)


def wait_until_ready(workers: list[WorkerHandle]) -> dict | None:
    """Wait for every worker to be ready, or for the first failure (returned as a worker error dict)."""
    waiting = {worker.chan.sock.fileno(): worker for worker in workers}
    poller = select.poll()
    for fd in waiting:
        poller.register(fd, select.POLLIN)
    while waiting:
        for fd, _ in poller.poll():
            poller.unregister(fd)
            failure = waiting.pop(fd).ready()
            if failure is not None:
                return failure
    return None


class WorkerHandle:
    def __init__(self, slot: int, process: WorkerProcess, chan: Channel):
        self.slot, self.process, self.chan, self.pid = slot, process, chan, process.pid
        self.counted = True  # counts toward the pool's size (False once it is on its way out)
        self.last_rss = self.peak_sampled = 0
        self._ps: psutil.Process | None = None

    @classmethod
    def launch(cls, slot: int, udf: dict, env: dict[str, str], threads: int, shm_root: str) -> WorkerHandle:
        """Start a worker process and send it its boot message; `ready()` says whether it started."""
        ours, theirs = socket.socketpair()
        try:
            process = start_worker(theirs, env, shm_root)
        except Exception as exc:
            ours.close()
            theirs.close()
            raise WorkerError(f"Could not start a worker process for map_batches {udf['name']}: {exc}") from exc
        chan = Channel(ours)
        try:
            chan.send({"sys_path": list(sys.path), "cwd": os.getcwd(), "env": env, "module": _WORKER_MODULE,
                       "function": "serve", "package_dir": _PACKAGE_DIR, "udf": udf, "threads": threads,
                       "slot": slot})
        except OSError:
            pass  # it died at once; ready() reports it
        return cls(slot, process, chan)

    def ready(self) -> dict | None:
        """Wait until the UDF is set up in the worker: None, or the failure as a worker error dict."""
        try:
            message = self.chan.recv()
        except (EOFError, OSError):
            message = None
        if message is not None and message[0] == "ready":
            self.last_rss = message[2]
            return None
        returncode = self.process.wait(10)
        self.chan.close()
        if message is not None:
            return message[1]
        return {"type": "WorkerDied", "message": exit_text(returncode), "traceback": "", "pickled": None,
                "pid": self.pid, "phase": "start"}

    def send_task(self, task: Task) -> None:
        try:
            self.chan.send(("task", task.id, task.in_path, task.out_path))
        except OSError:
            pass  # a dead worker: the receive that follows finds out

    def receive(self) -> tuple:
        """The next reply, sampling RSS while waiting. EOFError or OSError: the worker is gone."""
        while not self.chan.poll(RSS_SAMPLE_S):
            self._sample_rss()
        return self.chan.recv()

    def died_while_idle(self) -> bool:
        """With no task in flight, anything to read can only be the end of the channel."""
        return self.chan.poll(0)

    def task_done(self, stats: dict) -> None:
        self.last_rss = self.peak_sampled = stats.get("rss_after", self.last_rss)

    def stop(self, timeout: float, what: str) -> dict | None:
        """Ask the worker to call close() and exit; kill it if it takes longer than `timeout`.
        Returns what close() raised, as a worker error dict (also logged), or None."""
        closed = None
        try:
            self.chan.send(("stop",))
            if self.chan.poll(timeout):
                message = self.chan.recv()
                closed = message[1] if message[0] == "closed" else None
        except (EOFError, OSError):
            pass
        if self.process.wait(timeout) is None:
            self.kill()
        self.chan.close()
        if closed:
            log.warning("close() of map_batches %s raised in worker pid %s:\n%s", what, self.pid,
                        closed.get("traceback", ""))
        return closed

    def kill(self) -> None:
        """SIGKILL the process. Safe from any thread: the channel is closed by its own I/O thread,
        which sees the end of the stream (closing it here could hand its fd number to another file)."""
        self.process.kill()
        self.process.wait(10)

    def death(self, task_id: int | None, rows: int | None, attempt: int | None,
              oom_kills: int | None) -> WorkerDeath:
        """What is known about this worker's death (waits briefly for its exit status)."""
        returncode = self.process.wait(10)
        self.chan.close()
        return WorkerDeath(worker_pid=self.pid, worker_slot=self.slot, returncode=returncode,
                           signal=exit_signal(returncode), task_id=task_id, task_rows=rows, attempt=attempt,
                           last_rss_bytes=self.last_rss, peak_sampled_rss_bytes=self.peak_sampled,
                           cgroup_oom_kills=oom_kills)

    def _sample_rss(self) -> None:
        try:
            self._ps = self._ps or psutil.Process(self.pid)
            rss = self._ps.memory_info().rss
        except psutil.Error:
            return
        self.last_rss, self.peak_sampled = rss, max(self.peak_sampled, rss)

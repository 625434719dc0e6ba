"""Process pools for Python UDFs: map_batches functions and classes run in worker processes.

Why this module exists: Python code holds the GIL, so a Python UDF on the thread pool uses one
core. `WorkerPool` runs it in worker processes, started once per pool (once per run), and
hands them blocks through shared memory; rows are never pickled:

    with WorkerPool(Scorer, batch_format="numpy", concurrency=(1, 4), num_gpus=0.5) as pool:
        future = pool.submit(block)        # thread-safe; a concurrent.futures.Future
        table = future.result().table      # TaskResult (worker_reports.py): table, peak RSS, ...

- A function goes to every worker with cloudpickle (lambdas, closures, `__main__`). A class is
  an actor: each worker calls `__init__` once, and `close()` (if defined) when it stops. If
  `__init__` raises, `start()` and every submit raise UdfInitError with the user's traceback;
  a UDF raising on a block fails that block's future with UdfTaskError. Any slice of a block
  can be submitted, to bisect a bad block.
- Workers come from a single-threaded fork server (forkserver.py says why); blocks travel as
  Arrow IPC files in /dev/shm, read without copies (shm.py); inside, udf.py converts batches,
  on `batch_size` slices if asked (udf_worker.py).
- One I/O thread per worker writes inputs, keeps up to `max_tasks_in_flight` tasks queued at
  the worker (the next input is ready while it computes), reads results, completes futures.
- An input file that no worker points into any more once its task is done is written over
  by a later task (shm.py: a new tmpfs file costs five times the copy in page allocation).
- With `split_blocks=True`, `run()` cuts a large block into slices of about `TASK_BYTES`, and
  of about `TASK_SECONDS` of work once finished tasks have shown what a row costs, and a block
  that arrives while several workers wait into one slice each (an input of one small file still
  keeps every worker busy), runs them on every worker and concatenates the results in order. A block is then spread over all the
  workers instead of keeping one busy while the others idle at the end of a stage (a stage of
  8 blocks on 2 workers lost up to a block's time, 20% of a run). Only for a UDF without
  `batch_size`, whose batches are the engine's to choose.
- A worker that dies (SIGKILL, OOM killer, segfault) is reported as a WorkerDeath to
  `on_worker_death` and in `deaths`, replaced, and its tasks retried (the running one up to
  `max_task_retries` times, then WorkerCrashedError).
- concurrency=(min, max) autoscales on queue depth: a worker is added while more tasks are
  outstanding than there are workers; one idle for `idle_timeout_s` stops while more than
  min remain. `resize()` changes the bounds at any time.
- `close()` cancels queued tasks, lets running ones finish, has each worker call close() and
  exit, and removes the pool's block files; `close(graceful=False)` kills the workers at once.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Iterator, Mapping

import pyarrow as pa

from ...errors import PlanError, UdfInitError, UdfOutputError, WorkerError
from ...kernels.udf import parse_concurrency
from ...kernels.udf_errors import init_error
from .forkserver import prewarm as _prewarm_fork_server
from .resources import GpuPlan, default_concurrency, threads_per_worker, worker_env
from .shm import make_block_dir, remove_dir, remove_file, shm_root, sweep_stale_dirs
from .worker_handle import Task, WorkerHandle, pack_udf, wait_until_ready
from .worker_reports import TaskResult, WorkerDeath, cgroup_oom_kills, crash_error, settle, task_error

__all__ = ["TaskResult", "WorkerDeath", "WorkerPool", "prewarm"]
log = logging.getLogger("sluice.workers")
_STOP = object()
TASK_BYTES = 8 << 20  # split_blocks: the most input bytes per task
TASK_SECONDS = 0.1  # split_blocks: the most work per task, once the cost of a row is known
SPARE_INPUT_BYTES = 4 * TASK_BYTES  # larger input files are not kept to be written over


def prewarm() -> None:
    """Start the fork server in the background (once per process), so that the first pool starts
    sooner: its imports (~0.3 s) then overlap whatever the caller does meanwhile."""
    _prewarm_fork_server(shm_root())


class WorkerPool:
    """A pool of worker processes running one UDF. See the module docstring."""

    def __init__(self, fn: Callable, *, batch_format: str = "arrow", batch_size: int | None = None,
                 fn_kwargs: Mapping[str, Any] | None = None, fn_constructor_args: tuple = (),
                 fn_constructor_kwargs: Mapping[str, Any] | None = None,
                 concurrency: int | tuple[int, int] | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 max_tasks_in_flight: int = 2, max_task_retries: int = 3, idle_timeout_s: float = 30.0,
                 close_timeout_s: float = 60.0, on_worker_death: Callable[[WorkerDeath], None] | None = None,
                 name: str | None = None, split_blocks: bool = False):
        if num_cpus <= 0 or num_gpus < 0 or max_tasks_in_flight < 1 or max_task_retries < 0:
            raise PlanError("num_cpus must be > 0, num_gpus >= 0, max_tasks_in_flight >= 1, max_task_retries >= 0.")
        self._udf = pack_udf(fn, batch_format, batch_size, fn_kwargs, fn_constructor_args, fn_constructor_kwargs,
                             name)
        self.name, self.is_class, self._what = self._udf["name"], self._udf["is_class"], self._udf["what"]
        self._threads_per_worker = threads_per_worker(num_cpus)
        self._gpus = GpuPlan(num_gpus, self._what)
        self._default_concurrency = default_concurrency(num_cpus)
        self._min, self._max = self._bounds(concurrency)
        self._max_in_flight, self._max_task_retries = max_tasks_in_flight, max_task_retries
        self._idle_timeout, self._close_timeout = idle_timeout_s, close_timeout_s
        self._on_worker_death = on_worker_death
        self._cond = threading.Condition()
        self._start_lock = threading.Lock()
        self._queue: deque[Task] = deque()
        self._workers: dict[int, WorkerHandle] = {}
        self._threads: set[threading.Thread] = set()
        self._used_slots: set[int] = set()
        self._starting: set[int] = set()  # slots whose worker is starting
        self._uncounted: set[int] = set()  # starting slots resize() took out of _live
        self._task_ids = itertools.count(1)
        self._live = self._outstanding = 0
        self._started = self._closing = self._aborting = False
        self._failure: dict | None = None
        self._deaths: list[WorkerDeath] = []
        self.close_errors: list[dict] = []
        self._root = self._dir = None
        self._oom_base: int | None = None
        self._split = split_blocks
        self._row_seconds: float | None = None  # compute time per row, smoothed over finished tasks
        self._spare_inputs: list[str] = []  # input files no worker points into: written over (shm.py)

    # ------------------------------------------------------------------ public API

    def start(self) -> WorkerPool:
        """Start the minimum number of workers; return when all are ready. Idempotent, thread-safe.

        Raises UdfInitError (with the user's traceback) if any worker's `__init__` raises.
        """
        if self._started and self._failure is None:
            return self
        with self._start_lock:
            if self._failure is not None:
                raise init_error(self._failure, self._what, self.is_class)
            if self._started:
                return self
            if self._closing:
                raise WorkerError(f"The worker pool of map_batches {self.name} is closed.")
            self._root = shm_root()
            sweep_stale_dirs(self._root)
            self._dir = make_block_dir(self._root)
            weakref.finalize(self, remove_dir, self._dir)
            self._oom_base = cgroup_oom_kills()
            workers: list[WorkerHandle] = []
            try:
                for _ in range(self._min):
                    with self._cond:
                        slot = self._claim_slot()
                    workers.append(self._launch(slot))
                failure = wait_until_ready(workers)  # the first failure, without waiting for slow starters
                if failure is not None:
                    raise init_error(failure, self._what, self.is_class)
            except BaseException as exc:
                for worker in workers:
                    worker.kill()
                    worker.chan.close()
                with self._cond:
                    self._used_slots.clear()
                    if isinstance(exc, UdfInitError) and self._failure is None:
                        self._failure = getattr(exc, "info", None)
                remove_dir(self._dir)
                raise
            with self._cond:
                self._live = len(workers)
                self._started = True
            for worker in workers:
                self._spawn_thread(worker.slot, worker)
        return self

    def submit(self, table: pa.Table | pa.RecordBatch) -> Future:
        """Queue a block (or any slice of one); the Future's result is a TaskResult. Thread-safe."""
        return self._submit(_as_table(table, "submit"))

    def _submit(self, table: pa.Table, offset: int = 0, block_rows: int | None = None) -> Future:
        self.start()
        future: Future = Future()
        with self._cond:
            if self._failure is not None:
                raise init_error(self._failure, self._what, self.is_class)
            if self._closing:
                raise WorkerError(f"The worker pool of map_batches {self.name} is closed.")
            self._queue.append(Task(next(self._task_ids), table, future, offset, block_rows))
            self._outstanding += 1
            slot = None
            if self._outstanding > self._live and self._live < self._max:
                slot = self._claim_slot()
                if slot is not None:
                    self._live += 1
            self._cond.notify()
        if slot is not None:
            self._spawn_thread(slot, None)
        return future

    def run(self, table: pa.Table | pa.RecordBatch,
            on_slice_done: Callable[[int], None] | None = None) -> TaskResult:
        """submit() and wait: the form for a thread that has nothing else to do meanwhile.

        With split_blocks, a large block runs as slices on all the workers (module docstring);
        the TaskResult then covers them all: its table is theirs in order, its figures add up,
        and its memory figures are those of the slice whose worker grew the most. `on_slice_done`
        hears the input rows of each slice that finished while others still run.
        """
        table = _as_table(table, "run")
        size = self._slice_rows(table)
        if size >= table.num_rows:
            return self._submit(table).result()
        rows = table.num_rows
        futures = [self._submit(table.slice(offset, size), offset, rows) for offset in range(0, rows, size)]
        if on_slice_done is not None:
            for offset, future in zip(range(0, rows, size), futures):
                future.add_done_callback(lambda f, n=min(size, rows - offset): (
                    None if f.cancelled() or f.exception() is not None else on_slice_done(n)))
        started = time.perf_counter()
        try:
            results = [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return _merged(results, self._concat([r.table for r in results]), time.perf_counter() - started)

    def _slice_rows(self, table: pa.Table) -> int:
        """Rows per task for this block: all of them unless split_blocks and there is enough work."""
        rows = table.num_rows
        if not self._split or rows < 2 or self._max < 2:
            return max(rows, 1)
        size = rows * TASK_BYTES // max(table.nbytes, 1)
        if self._row_seconds:
            size = min(size, int(TASK_SECONDS / self._row_seconds))
        with self._cond:
            idle = max(0, self._max - self._outstanding)
        if idle > 1:  # workers that would wait for this block (a small input, the last blocks): give each a part
            size = min(size, -(-rows // idle))
        size = max(size, 1)
        if size >= rows:
            return rows
        return -(-rows // -(-rows // size))  # equal slices

    def _concat(self, tables: list[pa.Table]) -> pa.Table:
        try:
            return pa.concat_tables(tables, promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            # A slice that came back empty may carry a guessed type (an empty list is float64): drop it.
            # Slices may differ as one call over the block would not: pandas gives int64 to a slice without
            # nulls and float64 to one with; widen them to the type that holds both, as one call gives.
            full = [t for t in tables if t.num_rows] or tables
            try:
                return pa.concat_tables(full, promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                pass
            raise UdfOutputError(
                f"map_batches {self._what} returned different schemas for slices of one block ({exc}). "
                f"Return the same columns and types for every batch.") from None

    def imap(self, tables: Iterable[pa.Table], window: int | None = None) -> Iterator[TaskResult]:
        """Results in input order, keeping `window` blocks in flight (default: max workers x in flight + 1)."""
        window = window or self._max * self._max_in_flight + 1
        pending: deque[Future] = deque()
        try:
            for table in tables:
                pending.append(self.submit(table))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def resize(self, concurrency: int | tuple[int, int]) -> None:
        """New size: extra workers stop after their current tasks, missing ones start now."""
        low, high = self._bounds(concurrency)
        slots = []
        with self._cond:
            self._min, self._max = low, high
            for worker in sorted(self._workers.values(), key=lambda w: -w.slot):
                if self._live <= high:
                    break
                if worker.counted:  # it stops once its tasks in flight are done
                    worker.counted = False
                    self._live -= 1
            for slot in sorted(self._starting - self._uncounted, reverse=True):
                if self._live <= high:
                    break
                self._uncounted.add(slot)  # it stops as soon as it has started
                self._live -= 1
            while self._started and not self._closing and self._failure is None and self._live < low:
                slot = self._claim_slot()
                if slot is None:
                    break
                self._live += 1
                slots.append(slot)
            self._cond.notify_all()
        for slot in slots:
            self._spawn_thread(slot, None)

    def close(self, graceful: bool = True) -> None:
        """Stop the pool: cancel queued tasks, finish running ones (unless not graceful), call
        each instance's close(), wait for the workers to exit, remove the block files. Idempotent."""
        with self._cond:
            self._closing = True
            self._aborting = self._aborting or not graceful  # I/O threads kill their workers, never ask for close()
            queued = list(self._queue)
            self._queue.clear()
            self._outstanding -= len(queued)
            workers, threads = list(self._workers.values()), list(self._threads)
            self._cond.notify_all()
        for task in queued:
            remove_file(task.in_path)
            if not task.future.cancel():
                settle(task.future, exc=WorkerError(f"The worker pool of map_batches {self.name} was closed "
                                                      f"before this block ran."))
        if not graceful:
            for worker in workers:
                worker.kill()
        current = threading.current_thread()
        deadline = time.monotonic() + self._close_timeout
        for thread in threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():  # a task or a close() that hangs: stop waiting for it
                    for worker in list(self._workers.values()):
                        worker.kill()
                    thread.join(10)
        remove_dir(self._dir)

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(graceful=exc_type is None)

    @property
    def size(self) -> int:
        """Workers running or starting, not counting those on their way out."""
        with self._cond:
            return self._live

    @property
    def concurrency(self) -> tuple[int, int]:
        return self._min, self._max

    @property
    def deaths(self) -> list[WorkerDeath]:
        with self._cond:
            return list(self._deaths)

    def worker_pids(self) -> list[int]:
        with self._cond:
            return [w.pid for w in self._workers.values()]

    @property
    def block_dir(self) -> str | None:
        return self._dir

    # ------------------------------------------------------------------ workers

    def _bounds(self, concurrency) -> tuple[int, int]:
        return self._gpus.cap(*parse_concurrency(concurrency, self._default_concurrency))

    def _claim_slot(self) -> int | None:
        """The lowest free worker slot (None if the GPUs allow no more). Call under the lock."""
        slot = min(set(range(len(self._used_slots) + 1)) - self._used_slots)
        if self._gpus.slots is not None and slot >= len(self._gpus.slots):
            return None
        self._used_slots.add(slot)
        return slot

    def _launch(self, slot: int) -> WorkerHandle:
        env = worker_env(os.environ, self._threads_per_worker, self._gpus.devices(slot))
        return WorkerHandle.launch(slot, self._udf, env, self._threads_per_worker, self._root)

    def _ready(self, worker: WorkerHandle) -> None:
        failure = worker.ready()
        if failure is not None:
            raise init_error(failure, self._what, self.is_class)

    def _spawn_thread(self, slot: int, worker: WorkerHandle | None) -> None:
        thread = threading.Thread(target=self._run_slot, args=(slot, worker), daemon=True,
                                  name=f"sluice-udf-{self.name}-{slot}")
        with self._cond:
            self._threads.add(thread)
        thread.start()

    def _run_slot(self, slot: int, worker: WorkerHandle | None) -> None:
        """The I/O thread of one worker slot: start its worker if needed, serve, replace after deaths."""
        try:
            if worker is None:
                worker = self._start_in_slot(slot)
            else:
                with self._cond:
                    self._workers[slot] = worker
            while worker is not None:
                worker = self._serve(worker)
        except BaseException as exc:  # a bug here must fail the futures, not hang them
            log.exception("UDF worker pool %s: slot %d failed", self.name, slot)
            self._fail({"type": type(exc).__name__, "message": f"the pool's I/O thread failed: {exc}", "phase": "start"})
        finally:
            with self._cond:
                self._workers.pop(slot, None)
                self._used_slots.discard(slot)
                self._threads.discard(threading.current_thread())
                self._cond.notify_all()

    def _start_in_slot(self, slot: int) -> WorkerHandle | None:
        """Start a worker in a slot already counted in _live; resize() may uncount it meanwhile."""
        with self._cond:
            self._starting.add(slot)
        try:
            worker = self._launch(slot)
            self._ready(worker)
        except (UdfInitError, WorkerError) as exc:
            with self._cond:
                self._starting.discard(slot)
                if slot in self._uncounted:
                    self._uncounted.discard(slot)
                else:
                    self._live -= 1
            self._fail(getattr(exc, "info", None) or {"type": type(exc).__name__, "message": str(exc), "phase": "start"})
            return None
        with self._cond:
            self._starting.discard(slot)
            self._workers[slot] = worker
            if slot in self._uncounted:
                self._uncounted.discard(slot)
                worker.counted = False  # resized away while it started: it stops at once
        return worker

    def _serve(self, worker: WorkerHandle) -> WorkerHandle | None:
        """Feed one worker until it must stop (None) or dies (its replacement, or None)."""
        inflight: deque[Task] = deque()
        stopping = False
        while True:
            while not stopping and len(inflight) < self._max_in_flight:
                task = self._take(worker, block=not inflight)
                if task is None:
                    break
                if task is _STOP:
                    stopping = True
                    break
                if not inflight and worker.died_while_idle():
                    with self._cond:
                        self._queue.appendleft(task)
                    return self._on_death(worker, [])
                if self._dispatch(worker, task):
                    inflight.append(task)
            if not inflight:
                if stopping:
                    self._stop_worker(worker)
                    return None
                continue
            try:
                message = worker.receive()
            except (EOFError, OSError):
                return self._on_death(worker, list(inflight))
            self._complete(worker, inflight.popleft(), message)

    def _take(self, worker: WorkerHandle, block: bool):
        with self._cond:
            while True:
                if self._failure is not None:
                    return _STOP
                if worker.counted and self._live > self._max:
                    self._live -= 1
                    worker.counted = False
                if not worker.counted:
                    if self._queue:
                        self._cond.notify()  # it may have been woken for a task: pass the wake-up on
                    return _STOP
                if self._queue:
                    return self._queue.popleft()
                if self._closing:
                    return _STOP
                if not block:
                    return None
                woke = self._cond.wait(self._idle_timeout)
                if not woke and not self._queue and self._live > self._min and not self._closing:
                    self._live -= 1
                    worker.counted = False

    def _dispatch(self, worker: WorkerHandle, task: Task) -> bool:
        if not task.started:
            if not task.future.set_running_or_notify_cancel():
                self._finish(task)
                return False
            task.started = True
        spare = None
        if task.in_path is None:
            with self._cond:
                spare = self._spare_inputs.pop() if self._spare_inputs else None
        try:
            task.write_input(self._dir, self._what, spare)
        except WorkerError as exc:
            self._finish(task)
            settle(task.future, exc=exc)
            return False
        worker.send_task(task)
        return True

    def _complete(self, worker: WorkerHandle, task: Task, message: tuple) -> None:
        if message[1] != task.id:
            raise RuntimeError(f"worker pid {worker.pid} answered task {message[1]}, expected {task.id}")
        stats = message[2] if message[0] == "done" else message[3]
        worker.task_done(stats)
        if message[0] == "done" and stats.get("rows_in"):
            cost = stats["compute_s"] / stats["rows_in"]
            self._row_seconds = cost if self._row_seconds is None else 0.7 * self._row_seconds + 0.3 * cost
        try:
            outcome = task.result(worker, stats) if message[0] == "done" else task_error(
                message[2], self._what, task.id, task.rows, task.offset, task.block_rows)
        except Exception as exc:  # noqa: BLE001 - the result file could not be read
            outcome = WorkerError(f"Could not read the result of map_batches {self._what}: {exc}")
        remove_file(task.out_path)
        self._finish(task, reusable=message[0] == "done" and stats.get("input_released", False))
        if isinstance(outcome, BaseException):
            settle(task.future, exc=outcome)
        else:
            settle(task.future, result=outcome)

    def _finish(self, task: Task, reusable: bool = False) -> None:
        task.table = None
        with self._cond:
            self._outstanding -= 1
            keep = (reusable and task.in_bytes <= SPARE_INPUT_BYTES and not self._closing
                    and len(self._spare_inputs) < self._max * self._max_in_flight)
            if keep:
                self._spare_inputs.append(task.in_path)
        if not keep:
            remove_file(task.in_path)

    def _on_death(self, worker: WorkerHandle, inflight: list[Task]) -> WorkerHandle | None:
        current = inflight[0] if inflight else None
        oom = cgroup_oom_kills()
        death = worker.death(current.id if current else None, current.rows if current else None,
                             current.attempts + 1 if current else None,
                             None if oom is None or self._oom_base is None else oom - self._oom_base)
        failed: list[tuple[Task, BaseException]] = []
        with self._cond:
            if self._workers.get(worker.slot) is worker:
                del self._workers[worker.slot]
            self._deaths.append(death)
            if current is not None:
                current.attempts += 1
                current.deaths.append(death)
            requeue = []
            for task in inflight:
                remove_file(task.out_path)
                if self._closing or self._failure is not None:
                    failed.append((task, WorkerError(f"The worker pool of map_batches {self.name} stopped while "
                                                     f"this block ran ({death.describe()}).")))
                elif task is current and task.attempts > self._max_task_retries:
                    failed.append((task, crash_error(self._what, task.rows, task.deaths)))
                else:
                    requeue.append(task)
            self._queue.extendleft(reversed(requeue))
            self._cond.notify_all()
        for task, exc in failed:
            self._finish(task)
            settle(task.future, exc=exc)
        log.warning("%s.%s", death.describe(), " Retrying its tasks on a new worker." if requeue else "")
        if self._on_worker_death is not None:
            try:
                self._on_worker_death(death)
            except Exception:
                log.exception("on_worker_death callback failed")
        with self._cond:
            replace = worker.counted and not self._closing and self._failure is None and self._live <= self._max
            if not replace and worker.counted:
                self._live -= 1
                worker.counted = False
        return self._start_in_slot(worker.slot) if replace else None

    def _stop_worker(self, worker: WorkerHandle) -> None:
        if self._aborting:  # close(graceful=False): kill, as close() does, so that no worker runs close()
            worker.kill()
            worker.chan.close()
            return
        closed = worker.stop(self._close_timeout, self._what)
        if closed:
            self.close_errors.append(closed)

    def _fail(self, info: dict | None) -> None:
        """A worker could not start: fail the queued tasks, refuse new ones."""
        with self._cond:
            self._failure = self._failure or info
            queued = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for task in queued:
            self._finish(task)
            settle(task.future, exc=init_error(self._failure, self._what, self.is_class))


def _as_table(table, method: str) -> pa.Table:
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"WorkerPool.{method}() takes a pyarrow Table or RecordBatch, got {type(table).__name__}.")
    return table


def _merged(results: list[TaskResult], table: pa.Table, wall_s: float) -> TaskResult:
    """One TaskResult for the slices of a block (WorkerPool.run with split_blocks)."""
    first = results[0]
    grew = max(results, key=lambda r: r.peak_rss_bytes - r.rss_before_bytes)
    return TaskResult(
        table=table, task_id=first.task_id, rows_in=sum(r.rows_in for r in results), rows_out=table.num_rows,
        input_bytes=sum(r.input_bytes for r in results), output_bytes=sum(r.output_bytes for r in results),
        worker_pid=first.worker_pid, worker_slot=first.worker_slot, attempts=max(r.attempts for r in results),
        compute_s=sum(r.compute_s for r in results), cpu_s=sum(r.cpu_s for r in results),
        rss_before_bytes=grew.rss_before_bytes, peak_rss_bytes=grew.peak_rss_bytes,
        peak_rss_exact=all(r.peak_rss_exact for r in results), round_trip_s=wall_s)

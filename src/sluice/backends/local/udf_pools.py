"""The worker pools of one run's map_batches operators, sized from memory that was measured.

Each `map_batches` that runs in processes gets one `WorkerPool` per run, started when its
first block arrives and closed when the run ends (the fork server is started in the
background as soon as the run begins, so its imports overlap the first reads). A block is
split across the pool's workers (`split_blocks`) when it comes straight from a read task and
the UDF did not ask for a `batch_size` (a block an exchange made reaches the function whole).
How many workers it gets:

- `concurrency=` when the user gave it;
- else one per CPU (`num_cpus` each), lowered so that the workers' memory fits the budget:
  a task's memory is what `memory=` declared, or else the peak RSS growth per task that
  earlier runs of the same operator measured (udf_profiles.py). The pools of one
  run stream at the same time, so each one fits in what the pools started before it left.

Every task reports its worker's peak RSS growth; the largest is saved at the end of the run
under `<runs dir>/_profiles/<fingerprint>.json`, keyed by a fingerprint of the function's
code (nested code objects included, hashed by content so the key is the same in every
process) and the schema of its input, so the next run of the same operator starts with the
right concurrency. A worker killed by SIGKILL (the OOM killer, most likely) makes the pool
shrink by one worker, and its task is retried; when retries run out, the error names the
operator, the memory it was seen using and how to declare it.
"""

from __future__ import annotations

import os
import threading

import pyarrow as pa

from ...errors import WorkerCrashedError
from ...kernels.udf_profiles import PROFILE_DIR, ProfileStore, fingerprint
from ...observe.stats import format_bytes
from .resources import default_concurrency
from .workers import WorkerPool, prewarm


class UdfPools:
    def __init__(self, context, budget):
        self.context = context
        self.budget = budget
        self.store = ProfileStore(os.path.join(context.config.runs_dir, PROFILE_DIR))
        self._pools: dict[int, tuple[WorkerPool, str]] = {}
        self._peaks: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._committed = 0  # memory the run's pools may use at once: per-task need x max workers, summed
        self._lock = threading.Lock()
        self._calls = threading.local()  # per task thread: the workers' CPU time of its calls, not yet taken
        prewarm()  # the fork server boots while the run plans and reads its first blocks

    def pool_for(self, step, input_schema: pa.Schema) -> tuple[WorkerPool, str]:
        key = id(step)
        with self._lock:
            if key in self._pools:
                return self._pools[key]
            node, options = step.node, step.node.options
            print_key = fingerprint(node, input_schema)
            per_task, source = self._task_memory(node, print_key)
            concurrency = options.concurrency
            if concurrency is None:
                concurrency = self._fitting_concurrency(node, per_task, source)
            stats = self.context.stats
            pool = WorkerPool(
                node.fn, batch_format=node.batch_format, batch_size=None, fn_kwargs=dict(node.fn_kwargs),
                fn_constructor_args=options.constructor_args,
                fn_constructor_kwargs=dict(options.constructor_kwargs), concurrency=concurrency,
                num_cpus=options.num_cpus, num_gpus=options.num_gpus, max_tasks_in_flight=options.max_tasks_in_flight,
                name=node.fn_name, split_blocks=node.batch_size is None and step.splittable)
            pool._on_worker_death = lambda death, pool=pool: self._on_death(pool, node.fn_name, death)
            # Kept before it starts: if __init__ raises, later blocks (and the quarantine's retries
            # of this one) get the pool's remembered UdfInitError at once instead of new workers.
            self._pools[key] = (pool, print_key)
            self._names[print_key] = node.fn_name
            self._committed += (per_task or 0) * pool.concurrency[1]  # its pools run at once with later ones
            pool.start()
            stats.notes.append(f"map_batches {node.fn_name}: {pool.size} worker process(es)"
                               f" (concurrency {pool.concurrency[0]}-{pool.concurrency[1]})")
            return self._pools[key]

    def _task_memory(self, node, key: str) -> tuple[int | None, str]:
        """What one task needs: declared with memory=, else learned by earlier runs (None: unknown)."""
        if node.options.memory is not None:
            return node.options.memory, "declared"
        return (self.store.learned(key) or {}).get("peak_task_bytes") or None, "learned"

    def _fitting_concurrency(self, node, per_task: int | None, source: str) -> int:
        """One worker per CPU, fewer if their tasks would not fit in what the run's other pools leave."""
        wanted = default_concurrency(node.options.num_cpus)
        if not per_task:
            return wanted
        available = max(0, self.budget.limit - self._committed)
        fits = max(1, int(available // per_task))
        if fits < wanted:
            where = (f"the memory budget has {format_bytes(self.budget.limit)}" if not self._committed else
                     f"the memory budget has {format_bytes(available)} left by the run's other UDFs")
            self.context.stats.notes.append(
                f"map_batches {node.fn_name}: {fits} worker(s), not {wanted}: a task needs "
                f"{format_bytes(per_task)} ({source}) and {where}")
        return min(wanted, fits)

    def runs(self, step) -> bool:
        """The task's UdfRunner: map_batches steps with compute="processes" run in this run's pools."""
        return step.in_processes

    def run(self, step, table: pa.Table, stage_id: int) -> pa.Table:
        pool, key = self.pool_for(step, table.schema)
        progress, counted = self.context.progress, []

        def slice_done(rows: int) -> None:  # the stage's bar moves as workers finish slices of the block
            counted.append(rows)
            progress.advance_partial(stage_id, rows)

        try:
            result = pool.run(table, on_slice_done=slice_done)
        except WorkerCrashedError as exc:
            raise crashed_error(step.node.fn_name, exc) from exc
        finally:
            progress.advance_partial(stage_id, -sum(counted))  # the task reports its rows whole when it ends
        self.record(key, result)
        self._calls.worker_cpu_s = getattr(self._calls, "worker_cpu_s", 0.0) + result.cpu_s
        return result.table

    def take_worker_cpu_s(self) -> float:
        taken, self._calls.worker_cpu_s = getattr(self._calls, "worker_cpu_s", 0.0), 0.0
        return taken

    def record(self, key: str, result) -> None:
        growth = max(0, result.peak_rss_bytes - result.rss_before_bytes)
        with self._lock:
            if growth > self._peaks.get(key, 0):
                self._peaks[key] = growth

    def _on_death(self, pool: WorkerPool, name: str, death) -> None:
        note = f"map_batches {name}: a worker died ({death.describe()})"
        if death.likely_oom and pool.size > 1:
            low, _ = pool.concurrency
            high = max(1, pool.size - 1)
            pool.resize((min(low, high), high))  # an autoscaling pool keeps scaling, below its new maximum
            note += f"; the pool shrinks to {pool.size} worker(s) and the task is retried"
        self.context.stats.notes.append(note)

    def close(self, failed: bool) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool, _ in pools:
            pool.close(graceful=not failed)
        for key, peak in self._peaks.items():
            previous = (self.store.learned(key) or {}).get("peak_task_bytes", 0)
            try:
                self.store.save(key, {"operator": self._names.get(key), "peak_task_bytes": max(peak, previous),
                                      "last_run": self.context.run_id})
            except OSError as exc:
                self.context.stats.notes.append(f"could not save the memory profile of {self._names.get(key)}: {exc}")


def crashed_error(name: str, error: WorkerCrashedError) -> WorkerCrashedError:
    """The pool's give-up error, restated for the user: which operator, how much memory, what to do."""
    seen = max((d.peak_sampled_rss_bytes or d.last_rss_bytes or 0 for d in error.deaths), default=0)
    used = f"seen using up to {format_bytes(seen)}" if seen else "memory use unknown"
    return WorkerCrashedError(
        f"map_batches {name}: its worker processes were killed {len(error.deaths)} time(s) ({used}), most likely by "
        f"the out-of-memory killer, even with fewer workers. Declare what one task needs, e.g. "
        f"map_batches(..., memory='4GiB'), so fewer run at once; or pass a smaller batch_size, or raise the "
        f"memory budget (SLUICE_MEMORY_BUDGET). Details: {error}", error.deaths)

"""The local runner: stages stream blocks through a shared thread pool, in order.

The coordinating thread (the one that consumes the result) pulls on the root stage. Each
stage keeps a bounded window of tasks in flight on the pool (bounded by count and by the
memory budget) and hands their results on in submission order, so output order is
deterministic and a slow consumer holds back every producer: that is the backpressure.
Pool threads only ever run one operator chain over one block; they never wait on each
other, so the pool cannot deadlock. Polars and pyarrow release the GIL in their kernels.
Stages that read through an exchange (joins, aggregations, sorts) run in shuffle.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from ...plan.operators import WRITTEN_SCHEMA, MapBatchesStep, WriteStep, normalize_block
from ...plan.physical import PhysicalPlan, Stage
from ...reliability.retry import retrying
from ...reliability.run_store import RunStore
from ..base import RunContext, Runner, StageReporting
from ...io.source import MIN_TASK_BYTES, TARGET_TASK_BYTES, ReadTask
from ...observe.events import Sampler, run_sample, set_current_block
from ...observe.stats import HELD_BY_CONSUMER, HELD_BY_MEMORY
from .budget import WORK_FACTOR, MemoryBudget, use_prompt_allocator


class LocalRunner(Runner):
    name = "local"

    def execute(self, plan: PhysicalPlan, context: RunContext) -> Iterator[pa.Table]:
        use_prompt_allocator()
        budget = MemoryBudget(context.config.memory_budget)
        udf_steps = [op for stage in plan.stages() for op in stage.operators
                     if isinstance(op, MapBatchesStep) and op.in_processes]
        udf_pools = None
        if udf_steps:
            from .udf_pools import UdfPools  # worker-process machinery, loaded only by plans that use it
            udf_pools = UdfPools(context, budget)
        for step in udf_steps:
            step.runtime["pools"] = udf_pools
        # Threads that wait on worker processes use no CPU: twice as many keep the workers fed.
        threads = context.config.num_threads * (2 if udf_steps else 1)
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sluice")
        sampler = Sampler(context.events,
                          lambda: run_sample(context.stats, budget, with_workers=udf_pools is not None)).start()
        failed = True
        try:
            yield from _StageRun(plan.root, context, pool, budget).blocks()
            if context._dead_letters is not None:
                context.dead_letters.finish()  # the exact error budget, before anything is committed
            failed = False
        except GeneratorExit:
            failed = False  # the consumer stopped early (a break, take()): not a failure; close() the UDFs
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            sampler.stop()
            context.stats.peak_reserved_bytes = budget.peak
            if udf_pools is not None:
                udf_pools.close(failed)
            if context._dead_letters is not None:
                context.dead_letters.flush()


class _StageRun(StageReporting):
    def __init__(self, stage: Stage, context: RunContext, pool: ThreadPoolExecutor, budget: MemoryBudget,
                 finish: Callable[[pa.Table], Any] | None = None, checkpoint=None):
        self.stage = stage
        self.labels = stage.operator_labels
        self.context = context
        self.pool = pool
        self.budget = budget
        self.finish = finish  # applied in the pool to each output block, for a downstream exchange
        self._task_numbers = itertools.count()  # block ids: s<stage>-t<number>
        self.checkpoint = checkpoint  # the durable exchange this stage's map tasks feed (a resumable run)
        # read tasks have keys (what they read), so each one's map output is saved, and skipped on resume
        self.maps_to_checkpoint = checkpoint is not None and stage.scan is not None
        # a resumable run logs each finished write task, so that a resumed attempt can skip it
        self.writes = bool(stage.operators) and isinstance(stage.operators[-1], WriteStep) and \
            context.store is not None

    def blocks(self) -> Iterator[Any]:
        return self._reported(self._blocks())

    def _blocks(self) -> Iterator[Any]:
        stage, stats = self.stage, self.context.stats
        if stage.shuffle:
            from .shuffle import ShuffleStage
            self._start(None)
            outputs: Iterator[Any] = ShuffleStage(self).blocks()
            if self.finish is not None:
                outputs = self.parallel(self.finish, ((b, b.nbytes) for b in outputs))
            yield from self._counted(outputs)
            return
        if stage.scan is not None:
            self.read_schema = stage.read_schema
            threads = self.context.config.num_threads
            request = dataclasses.replace(stage.scan_request, parallelism=threads, max_task_bytes=self.budget.task_bytes(
                threads, TARGET_TASK_BYTES, MIN_TASK_BYTES), on_bad_input=None if self.context.config.on_error == "raise"
                else lambda *bad: self.context.dead_letters.record_unreadable(stage.id, *bad))
            tasks = stage.scan.source.plan_tasks(request)
            stats.stages[stage.id].tasks_total = len(tasks)
            self._start(len(tasks))

            def key(task) -> str:
                return f"s{stage.id}:{task.description}"

            tasks, skipped = self.skip_completed(tasks, key)
            yield from self._counted(skipped)
            yield from self._counted(self.parallel(self._finished(self._read_and_process),
                                                   ((task, task.estimated_bytes) for task in tasks), key))
            return
        self._start(None)
        if stage.fused is not None:
            from .fused import FusedStage
            upstream: Iterator[pa.Table] = FusedStage(self).blocks()
        else:
            upstream = _concat([self.upstream(s) for s in stage.inputs])
        if stage.stream_op is not None:
            upstream = stage.stream_op.apply(upstream)
        if not stage.operators and self.finish is None:
            yield from self._counted(upstream)
            return
        yield from self._counted(self.parallel(self._finished(self.process), ((b, b.nbytes) for b in upstream)))

    def upstream(self, stage: Stage, finish: Callable[[pa.Table], Any] | None = None, checkpoint=None) -> Iterator[Any]:
        return _StageRun(stage, self.context, self.pool, self.budget, finish, checkpoint).blocks()

    @staticmethod
    def _rows_of(output: Any) -> int:
        return _output_size(output)[0]

    def skip_completed(self, items: list, key: Callable[[Any], str]) -> tuple[list, list[pa.Table]]:
        """Split a resumed stage's items into those still to run and the outputs of those an earlier
        attempt finished: write tasks whose staged files are logged, map tasks whose output is on disk
        (the exchange restores those itself)."""
        if self.maps_to_checkpoint:
            self.checkpoint.keyed = True
            return RunStore.unfinished_maps(items, key, self.checkpoint.completed, self.context.stats,
                                            self.stage.id), []
        if not self.writes:
            return items, []
        return self.context.store.finished_writes(items, key, self.context.stats, self.stage.id)

    def _task(self, work: Callable[[Any], Any], item: Any, number: int,
              key: Callable[[Any], str] | None = None) -> Any:
        """Run one task in the pool, logging its start and end with what it covers (events.jsonl)."""
        events, stage = self.context.events, self.stage.id
        block = f"s{stage}-t{number}"
        set_current_block(stage, block)
        events.emit("task_start", stage=stage, block=block, attempt=1, pid=events.pid, host=events.host,
                    thread=threading.current_thread().name, **_covers(item))
        started = time.perf_counter()
        try:
            result = work(item)
        except BaseException as exc:
            events.emit("task_end", stage=stage, block=block, attempt=1, status="failed",
                        wall_s=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            set_current_block(None, None)
        if key is not None and self.writes and isinstance(result, pa.Table):
            self.context.store.log_task(key(item), result.to_pylist())
        elif key is not None and self.maps_to_checkpoint:
            self.checkpoint.save(key(item), result[0])  # the (partition, piece) list the exchange gets
        rows, size = _output_size(result)
        events.emit("task_end", stage=stage, block=block, attempt=1, status="ok", rows=rows, bytes=size,
                    wall_s=time.perf_counter() - started)
        return result

    def _finished(self, work: Callable[[Any], pa.Table]) -> Callable[[Any], Any]:
        if self.finish is None:
            return work
        finish = self.finish
        return lambda item: finish(work(item))

    def parallel(self, work: Callable[[Any], Any], items: Iterable[tuple[Any, int]],
                 key: Callable[[Any], str] | None = None) -> Iterator[Any]:
        """Run `work` over items on the pool, a bounded window at a time, yielding results in order.

        An item's estimate can be far below what its task makes: a read task's estimate knows only
        the source's columns, not those that with_columns or a UDF add. So each estimate is scaled
        by the largest ratio of a result's size to its item's estimate measured so far. A stage
        that hands blocks to UDF worker processes reserves one more copy per task (the block's
        copy in shared memory), and runs its first task alone until it has been measured.
        """
        window: deque[tuple[Future, int, int]] = deque()
        source = iter(items)
        waiting: tuple[Any, int] | None = None
        limit = self.context.config.max_tasks_in_flight
        feeds_workers = any(isinstance(op, MapBatchesStep) and op.in_processes for op in self.stage.operators)
        factor = WORK_FACTOR + (1 if feeds_workers else 0)
        scale, measured = 1.0, not feeds_workers
        held_by_memory = False
        try:
            while True:
                while len(window) < (limit if measured else 1):
                    if waiting is None:
                        waiting = next(source, None)
                        if waiting is None:
                            break
                    item, estimate = waiting
                    reserve = int(estimate * scale) * factor
                    if not self.budget.try_reserve(reserve, force=not window):
                        held_by_memory = True
                        break
                    window.append((self.pool.submit(self._task, work, item, next(self._task_numbers), key),
                                   reserve, estimate))
                    self.context.stats.stages[self.stage.id].in_flight = len(window)
                    self.context.stats.admitted(self.stage.id, self.budget.reserved)
                    waiting = None
                if not window:
                    return
                future, reserved, estimate = window.popleft()
                self.context.stats.stages[self.stage.id].in_flight = len(window)
                try:
                    result = self._wait(future, HELD_BY_MEMORY if held_by_memory else None)
                    held_by_memory = False
                    if isinstance(result, pa.Table) and estimate > 0:
                        scale = max(scale, result.nbytes / estimate)
                    measured = True
                    # with its window full, the stage produces nothing more until the consumer asks
                    held = HELD_BY_CONSUMER if len(window) + 1 >= limit else None
                    if held:
                        self.set_state(held)
                    started = time.perf_counter()
                    yield result  # the reservation covers the result until the consumer asks for the next
                    if held:
                        self.context.stats.add_held(self.stage.id, held, time.perf_counter() - started)
                        self.set_state("")
                finally:
                    self.budget.release(reserved)
        finally:
            for future, reserved, _ in window:
                future.cancel()
                self.budget.release(reserved)
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _wait(self, future: Future, held: str | None):
        """The oldest task's result; time spent waiting is held time when admission was refused."""
        if held is None or future.done():
            return future.result()
        self.set_state(held)
        started = time.perf_counter()
        try:
            return future.result()
        finally:
            self.context.stats.add_held(self.stage.id, held, time.perf_counter() - started)
            self.set_state("")

    def _read_and_process(self, task) -> pa.Table:
        schema = self.read_schema
        started, cpu_started = time.perf_counter(), time.thread_time()
        # the whole task is read inside the retried call, so a retry never repeats rows
        pieces = retrying(lambda: list(task.read()), self.context.config, self.context.stats,
                          f"reading {task.description}")
        block = pa.concat_tables(pieces) if pieces else schema.empty_table()
        block = normalize_block(block, schema)
        self.context.stats.add_input(task.input_bytes)
        self.context.stats.record(self.stage.id, "Scan", 0, block.num_rows, 0, block.nbytes,
                                  time.perf_counter() - started, time.thread_time() - cpu_started)
        return self.process(block, task)

    def process(self, block: pa.Table, task=None) -> pa.Table:
        """Run the stage's per-block operator chain; bad rows go to the dead-letter dataset."""
        for index, operator in enumerate(self.stage.operators):
            try:
                block = self.timed(operator, block, self.labels[index])
            except Exception as exc:
                from ...reliability.quarantine import is_row_error
                if not (is_row_error(exc) and self.context.config.on_error == "quarantine"):
                    raise
                block = self._quarantine(index, operator, block, task, exc)
        return block

    def _quarantine(self, index: int, operator, block: pa.Table, task, error: Exception) -> pa.Table:
        from ...reliability.quarantine import empty_output, isolate
        started, cpu_started = time.perf_counter(), time.thread_time()
        outputs, bad = isolate(operator.apply, block, error)
        result = pa.concat_tables(outputs, promote_options="permissive") if outputs else \
            empty_output(operator, block, error)
        stats, label = self.context.stats, self.labels[index]
        stats.record(self.stage.id, label, block.num_rows, result.num_rows, block.nbytes, result.nbytes,
                     time.perf_counter() - started, time.thread_time() - cpu_started)
        seen = stats.operators[(self.stage.id, label)].rows_in
        self.context.dead_letters.record(self.stage.id, operator, label, f"stage{self.stage.id}-op{index}", block,
                                         bad, self._positions(task, index, block.num_rows), seen)
        from ...observe.events import current_block
        stats.add_bad_records(self.stage.id, len(bad))
        stats.emit("bad_records", stage=self.stage.id, operator=label, block=current_block()[1], count=len(bad))
        return result

    def _positions(self, task, index: int, rows: int) -> pa.Table | None:
        """Source file and row of each row entering operator `index`, by re-reading the task."""
        if task is None:  # the block came from another stage, not straight from a read task
            return None
        from ...reliability.quarantine import replay_positions
        return replay_positions(task, self.read_schema, self.stage.operators[:index], rows)

    def measured(self, name: str, rows_in: int, bytes_in: int, action: Callable[[], Any], rows_out, bytes_out):
        started, cpu_started = time.perf_counter(), time.thread_time()
        result = action()
        self.context.stats.record(self.stage.id, name, rows_in, rows_out(result), bytes_in, bytes_out(result),
                                  time.perf_counter() - started, time.thread_time() - cpu_started)
        return result

    def timed(self, operator, block: pa.Table, label: str | None = None) -> pa.Table:
        return self.measured(label or operator.name, block.num_rows, block.nbytes, lambda: operator.apply(block),
                            lambda t: t.num_rows, lambda t: t.nbytes)

    def timed_reduce(self, reducer, inputs: list[pa.Table]) -> pa.Table:
        return self.measured(reducer.name, sum(t.num_rows for t in inputs), sum(t.nbytes for t in inputs),
                            lambda: reducer.reduce(inputs), lambda t: t.num_rows, lambda t: t.nbytes)

    def timed_partition(self, partitioner, block: pa.Table, partitions: int) -> list[tuple[int, pa.Table]]:
        return self.measured("Partition", block.num_rows, block.nbytes, lambda: partitioner.assign(block, partitions),
                            lambda pieces: sum(p.num_rows for _, p in pieces),
                            lambda pieces: sum(p.nbytes for _, p in pieces))


def _output_size(output: Any) -> tuple[int, int]:
    """Rows and bytes a task put out: a block; a write's file list (the rows written); or the
    partitioned pieces (and key sample) a map task hands to an exchange."""
    if isinstance(output, pa.Table):
        if output.schema.equals(WRITTEN_SCHEMA):
            return sum(output["rows"].to_pylist()), sum(output["bytes"].to_pylist())
        return output.num_rows, output.nbytes
    if isinstance(output, tuple) and output and isinstance(output[0], list):
        pieces = [piece for _, piece in output[0]]
        return sum(p.num_rows for p in pieces), sum(p.nbytes for p in pieces)
    return 0, 0


def _covers(item: Any) -> dict:
    """What a task covers, for its task_start event: source rows, or exchange partitions."""
    if isinstance(item, ReadTask):
        if item.rows:
            return {"sources": [{"file": f, "first_row": first, "end_row": end} for f, first, end in item.rows]}
        return {"sources": [{"file": f, "first_row": None, "end_row": None} for f in item.files]}
    partitions = getattr(item, "partitions", None)  # a reduce task
    if isinstance(partitions, tuple):
        return {"partitions": list(partitions)}
    return {}


def _concat(streams: list[Iterator[pa.Table]]) -> Iterator[pa.Table]:
    """Chain streams in order; closing the chain closes every stream, started or not."""
    try:
        for stream in streams:
            yield from stream
    finally:
        for stream in streams:
            stream.close()

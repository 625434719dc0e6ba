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
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from ...plan.operators import MapBatchesStep, normalize_block
from ...plan.physical import PhysicalPlan, Stage
from ...reliability.retry import retrying
from ..base import RunContext, Runner
from ...io.source import MIN_TASK_BYTES, POSITION_COLUMNS, TARGET_TASK_BYTES
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
            context.stats.peak_reserved_bytes = budget.peak
            if udf_pools is not None:
                udf_pools.close(failed)
            if context._dead_letters is not None:
                context.dead_letters.flush()


class _StageRun:
    def __init__(self, stage: Stage, context: RunContext, pool: ThreadPoolExecutor, budget: MemoryBudget,
                 finish: Callable[[pa.Table], Any] | None = None):
        self.stage = stage
        self.context = context
        self.pool = pool
        self.budget = budget
        self.finish = finish  # applied in the pool to each output block, for a downstream exchange

    def blocks(self) -> Iterator[Any]:
        stage, stats = self.stage, self.context.stats
        stats.stage(stage.id, stage.name)
        if stage.shuffle:
            from .shuffle import ShuffleStage
            self.context.progress.start_stage(stage.id, stage.name, None)
            outputs: Iterator[Any] = ShuffleStage(self).blocks()
            if self.finish is not None:
                outputs = self.parallel(self.finish, ((b, b.nbytes) for b in outputs))
            yield from self._counted(outputs)
            return
        if stage.scan is not None:
            self.read_schema = stage.read_schema
            threads = self.context.config.num_threads
            request = dataclasses.replace(stage.scan_request, parallelism=threads, max_task_bytes=self.budget.task_bytes(
                threads, TARGET_TASK_BYTES, MIN_TASK_BYTES))
            tasks = stage.scan.source.plan_tasks(request)
            stats.stages[stage.id].tasks_total = len(tasks)
            self.context.progress.start_stage(stage.id, stage.name, len(tasks))
            yield from self._counted(self.parallel(self._finished(self._read_and_process),
                                                   ((task, task.estimated_bytes) for task in tasks)))
            return
        self.context.progress.start_stage(stage.id, stage.name, None)
        upstream: Iterator[pa.Table] = _concat([self.upstream(s) for s in stage.inputs])
        if stage.stream_op is not None:
            upstream = stage.stream_op.apply(upstream)
        if not stage.operators and self.finish is None:
            yield from self._counted(upstream)
            return
        yield from self._counted(self.parallel(self._finished(self.process), ((b, b.nbytes) for b in upstream)))

    def upstream(self, stage: Stage, finish: Callable[[pa.Table], Any] | None = None) -> Iterator[Any]:
        return _StageRun(stage, self.context, self.pool, self.budget, finish).blocks()

    def _counted(self, outputs: Iterable[Any]) -> Iterator[Any]:
        for output in outputs:
            self.context.stats.task_done(self.stage.id)
            rows = output.num_rows if isinstance(output, pa.Table) else 0
            self.context.progress.advance(self.stage.id, rows)
            yield output

    def _finished(self, work: Callable[[Any], pa.Table]) -> Callable[[Any], Any]:
        if self.finish is None:
            return work
        finish = self.finish
        return lambda item: finish(work(item))

    def parallel(self, work: Callable[[Any], Any], items: Iterable[tuple[Any, int]]) -> Iterator[Any]:
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
                    window.append((self.pool.submit(work, item), reserve, estimate))
                    waiting = None
                if not window:
                    return
                future, reserved, estimate = window.popleft()
                try:
                    result = self._wait(future, HELD_BY_MEMORY if held_by_memory else None)
                    held_by_memory = False
                    if isinstance(result, pa.Table) and estimate > 0:
                        scale = max(scale, result.nbytes / estimate)
                    measured = True
                    # with its window full, the stage produces nothing more until the consumer asks
                    held = HELD_BY_CONSUMER if len(window) + 1 >= limit else None
                    if held:
                        self.context.progress.set_state(self.stage.id, held)
                    started = time.perf_counter()
                    yield result  # the reservation covers the result until the consumer asks for the next
                    if held:
                        self.context.stats.add_held(self.stage.id, held, time.perf_counter() - started)
                        self.context.progress.set_state(self.stage.id, "")
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
        self.context.progress.set_state(self.stage.id, held)
        started = time.perf_counter()
        try:
            return future.result()
        finally:
            self.context.stats.add_held(self.stage.id, held, time.perf_counter() - started)
            self.context.progress.set_state(self.stage.id, "")

    def _read_and_process(self, task) -> pa.Table:
        schema = self.read_schema
        started, cpu_started = time.perf_counter(), time.thread_time()
        # the whole task is read inside the retried call, so a retry never repeats rows
        pieces = retrying(lambda: list(task.read()), self.context.config, self.context.stats,
                          f"reading {task.description}")
        block = pa.concat_tables(pieces) if pieces else schema.empty_table()
        block = normalize_block(block, schema)
        self.context.stats.record(self.stage.id, "Scan", 0, block.num_rows, 0, block.nbytes,
                                  time.perf_counter() - started, time.thread_time() - cpu_started)
        return self.process(block, task)

    def process(self, block: pa.Table, task=None) -> pa.Table:
        """Run the stage's per-block operator chain; bad rows go to the dead-letter dataset."""
        for index, operator in enumerate(self.stage.operators):
            try:
                block = self.timed(operator, block)
            except Exception as exc:
                from ...reliability.quarantine import is_row_error
                if not (is_row_error(exc) and self.context.config.on_error == "quarantine"):
                    raise
                block = self._quarantine(index, operator, block, task, exc)
        return block

    def _quarantine(self, index: int, operator, block: pa.Table, task, error: Exception) -> pa.Table:
        from ...reliability.quarantine import isolate
        started, cpu_started = time.perf_counter(), time.thread_time()
        outputs, bad = isolate(operator.apply, block, error)
        result = pa.concat_tables(outputs, promote_options="permissive") if outputs else \
            _empty_output(operator, block, error)
        stats = self.context.stats
        stats.record(self.stage.id, operator.name, block.num_rows, result.num_rows, block.nbytes, result.nbytes,
                     time.perf_counter() - started, time.thread_time() - cpu_started)
        seen = stats.operators[(self.stage.id, operator.name)].rows_in
        self.context.dead_letters.record(self.stage.id, operator, f"stage{self.stage.id}-op{index}", block, bad,
                                         self._positions(task, index, block.num_rows), seen)
        return result

    def _positions(self, task, index: int, rows: int) -> pa.Table | None:
        """Source file and row of each row entering operator `index`, by re-reading the task."""
        from ...reliability.quarantine import is_row_error, isolate
        if task is None or task.read_positions is None:
            return None
        try:
            pieces = list(task.read_positions())
            table = pa.concat_tables(pieces) if pieces else None
            if table is None:
                return None
            positions = table.select(list(POSITION_COLUMNS))
            table = normalize_block(table.drop_columns(list(POSITION_COLUMNS)), self.read_schema)
            for name in POSITION_COLUMNS:
                table = table.append_column(name, positions[name])
            for operator in self.stage.operators[:index]:
                try:
                    table = operator.apply(table)
                except Exception as exc:  # noqa: BLE001 - rows quarantined earlier fail again: skip them
                    if not is_row_error(exc):
                        return None
                    outputs, _ = isolate(operator.apply, table, exc)
                    table = pa.concat_tables(outputs, promote_options="permissive") if outputs else None
                if table is None or not set(POSITION_COLUMNS) <= set(table.column_names):
                    return None
        except Exception:  # noqa: BLE001 - provenance is best effort; the bad rows are recorded regardless
            return None
        return table.select(list(POSITION_COLUMNS)) if table.num_rows == rows else None

    def measured(self, name: str, rows_in: int, bytes_in: int, action: Callable[[], Any], rows_out, bytes_out):
        started, cpu_started = time.perf_counter(), time.thread_time()
        result = action()
        self.context.stats.record(self.stage.id, name, rows_in, rows_out(result), bytes_in, bytes_out(result),
                                  time.perf_counter() - started, time.thread_time() - cpu_started)
        return result

    def timed(self, operator, block: pa.Table) -> pa.Table:
        return self.measured(operator.name, block.num_rows, block.nbytes, lambda: operator.apply(block),
                            lambda t: t.num_rows, lambda t: t.nbytes)

    def timed_reduce(self, reducer, inputs: list[pa.Table]) -> pa.Table:
        return self.measured(reducer.name, sum(t.num_rows for t in inputs), sum(t.nbytes for t in inputs),
                            lambda: reducer.reduce(inputs), lambda t: t.num_rows, lambda t: t.nbytes)

    def timed_partition(self, partitioner, block: pa.Table, partitions: int) -> list[tuple[int, pa.Table]]:
        return self.measured("Partition", block.num_rows, block.nbytes, lambda: partitioner.assign(block, partitions),
                            lambda pieces: sum(p.num_rows for _, p in pieces),
                            lambda pieces: sum(p.nbytes for _, p in pieces))


def _empty_output(operator, block: pa.Table, error: Exception) -> pa.Table:
    """What an operator gives for no rows, when every row of a block was bad."""
    try:
        return operator.apply(block.slice(0, 0))
    except Exception:  # noqa: BLE001 - a UDF may reject empty input; fall back to its declared schema
        node = getattr(operator, "node", None)
        schema = getattr(node, "schema", None)
        if schema is None:
            raise error from None
        return schema.empty_table()


def _concat(streams: list[Iterator[pa.Table]]) -> Iterator[pa.Table]:
    """Chain streams in order; closing the chain closes every stream, started or not."""
    try:
        for stream in streams:
            yield from stream
    finally:
        for stream in streams:
            stream.close()

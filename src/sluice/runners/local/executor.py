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

from ...plan.operators import normalize_block
from ...plan.physical import PhysicalPlan, Stage
from ..base import RunContext, Runner
from ...io.source import MIN_TASK_BYTES, TARGET_TASK_BYTES
from .budget import WORK_FACTOR, MemoryBudget, use_prompt_allocator


class LocalRunner(Runner):
    name = "local"

    def execute(self, plan: PhysicalPlan, context: RunContext) -> Iterator[pa.Table]:
        use_prompt_allocator()
        pool = ThreadPoolExecutor(max_workers=context.config.num_threads, thread_name_prefix="sluice")
        budget = MemoryBudget(context.config.memory_budget)
        try:
            yield from _StageRun(plan.root, context, pool, budget).blocks()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            context.stats.peak_reserved_bytes = budget.peak


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
        """Run `work` over items on the pool, a bounded window at a time, yielding results in order."""
        window: deque[tuple[Future, int]] = deque()
        source = iter(items)
        waiting: tuple[Any, int] | None = None
        limit = self.context.config.max_tasks_in_flight
        try:
            while True:
                while len(window) < limit:
                    if waiting is None:
                        waiting = next(source, None)
                        if waiting is None:
                            break
                    item, estimate = waiting
                    estimate *= WORK_FACTOR
                    if not self.budget.try_reserve(estimate, force=not window):
                        break
                    window.append((self.pool.submit(work, item), estimate))
                    waiting = None
                if not window:
                    return
                future, reserved = window.popleft()
                try:
                    result = future.result()
                    yield result  # the reservation covers the result until the consumer asks for the next
                finally:
                    self.budget.release(reserved)
        finally:
            for future, reserved in window:
                future.cancel()
                self.budget.release(reserved)
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _read_and_process(self, task) -> pa.Table:
        schema = self.read_schema
        started, cpu_started = time.perf_counter(), time.thread_time()
        pieces = list(task.read())
        block = pa.concat_tables(pieces) if pieces else schema.empty_table()
        block = normalize_block(block, schema)
        self.context.stats.record(self.stage.id, "Scan", 0, block.num_rows, 0, block.nbytes,
                                  time.perf_counter() - started, time.thread_time() - cpu_started)
        return self.process(block)

    def process(self, block: pa.Table) -> pa.Table:
        """Run the stage's per-block operator chain."""
        for operator in self.stage.operators:
            block = self.timed(operator, block)
        return block

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


def _concat(streams: list[Iterator[pa.Table]]) -> Iterator[pa.Table]:
    """Chain streams in order; closing the chain closes every stream, started or not."""
    try:
        for stream in streams:
            yield from stream
    finally:
        for stream in streams:
            stream.close()

"""The local runner: stages stream blocks through a shared thread pool, in order.

The coordinating thread (the one that consumes the result) pulls on the root stage. Each
stage keeps a bounded window of tasks in flight on the pool (bounded by count and by the
memory budget) and hands their results on in submission order, so output order is
deterministic and a slow consumer holds back every producer: that is the backpressure.
Pool threads only ever run one operator chain over one block; they never wait on each
other, so the pool cannot deadlock. Polars and pyarrow release the GIL in their kernels.
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
from .budget import MemoryBudget, use_prompt_allocator


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
    def __init__(self, stage: Stage, context: RunContext, pool: ThreadPoolExecutor, budget: MemoryBudget):
        self.stage = stage
        self.context = context
        self.pool = pool
        self.budget = budget

    def blocks(self) -> Iterator[pa.Table]:
        stage, stats = self.stage, self.context.stats
        stats.stage(stage.id, stage.name)
        if stage.scan is not None:
            self.read_schema = stage.read_schema
            request = dataclasses.replace(stage.scan_request, parallelism=self.context.config.num_threads)
            tasks = stage.scan.source.plan_tasks(request)
            stats.stages[stage.id].tasks_total = len(tasks)
            self.context.progress.start_stage(stage.id, stage.name, len(tasks))
            items: Iterable[tuple[Any, int]] = ((task, task.estimated_bytes) for task in tasks)
            work: Callable[[Any], pa.Table] = self._read_and_process
        else:
            self.context.progress.start_stage(stage.id, stage.name, None)
            upstream: Iterator[pa.Table] = _concat(
                [_StageRun(s, self.context, self.pool, self.budget).blocks() for s in stage.inputs])
            if stage.stream_op is not None:
                upstream = stage.stream_op.apply(upstream)
            if not stage.operators:
                for block in upstream:
                    self._task_finished(block)
                    yield block
                return
            items = ((block, block.nbytes) for block in upstream)
            work = self._process
        for block in self._ordered_map(work, items):
            self._task_finished(block)
            yield block

    def _task_finished(self, block: pa.Table) -> None:
        self.context.stats.task_done(self.stage.id)
        self.context.progress.advance(self.stage.id, block.num_rows)

    def _ordered_map(self, work: Callable[[Any], pa.Table], items: Iterable[tuple[Any, int]]) -> Iterator[pa.Table]:
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
                    if not self.budget.try_reserve(estimate, force=not window):
                        break
                    window.append((self.pool.submit(work, item), estimate))
                    waiting = None
                if not window:
                    return
                future, reserved = window.popleft()
                try:
                    block = future.result()
                    yield block  # the reservation covers the block until the consumer asks for the next
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
        return self._process(block)

    def _process(self, block: pa.Table) -> pa.Table:
        for operator in self.stage.operators:
            started, cpu_started = time.perf_counter(), time.thread_time()
            result = operator.apply(block)
            self.context.stats.record(self.stage.id, operator.name, block.num_rows, result.num_rows, block.nbytes,
                                      result.nbytes, time.perf_counter() - started, time.thread_time() - cpu_started)
            block = result
        return block


def _concat(streams: list[Iterator[pa.Table]]) -> Iterator[pa.Table]:
    """Chain streams in order; closing the chain closes every stream, started or not."""
    try:
        for stream in streams:
            yield from stream
    finally:
        for stream in streams:
            stream.close()

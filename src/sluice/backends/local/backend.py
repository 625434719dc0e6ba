"""The local backend: tasks on one thread pool of this process, under the memory budget.

Why this module exists: it is what the embedded engine supplies to the engine core
(engine/backend.py). Tasks run `engine.task.run_task` on a shared thread pool: Polars and
pyarrow release the GIL in their kernels, so native work uses every core from threads. Only
the driver thread waits; pool threads never wait on each other. Blocks are pyarrow Tables
held in this process; exchange pieces sit in buffers that spill to local disk (exchange.py).
`map_batches` steps that run in processes go to the run's UDF worker pools (udf_pools.py)
from the task's thread; the pool doubles its threads when a plan has such steps, since a
thread waiting on a worker uses no CPU.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pyarrow as pa

from ...engine.backend import Backend
from ...engine.split_tasks import TASK_BODIES
from ...engine.task import ChainSpec, Report, run_task
from ...physical.operators import MapBatchesStep
from .budget import MemoryBudget, use_prompt_allocator
from .exchange import BufferedExchange, Deferred


class FutureItem:
    """One of the values a task body returns, before it has finished."""

    __slots__ = ("future", "index")

    def __init__(self, future: Future, index: int):
        self.future, self.index = future, index

    def value(self):
        return self.future.result()[self.index]


def _in_driver(handle):
    """A handle the task can take: a pending value waited for here (pool threads never wait on each other)."""
    return handle.value() if isinstance(handle, FutureItem) else handle


def _in_task(handle):
    return handle.load() if isinstance(handle, Deferred) else handle


class LocalChain:
    def __init__(self, backend: LocalBackend, spec: ChainSpec):
        self.backend, self.spec = backend, spec

    def submit(self, kind: str, payload, args: list, block: str) -> Future:
        pieces = [_in_driver(a) for a in args]
        return self.backend.pool.submit(_run_chain, self.spec, kind, payload, pieces, self.backend.udf_pools, block)


def _run_chain(spec: ChainSpec, kind: str, payload, pieces: list, udfs, block: str) -> list:
    return run_task(spec, kind, payload, tuple(_in_task(p) for p in pieces), udfs, block)


def _call_body(name: str, args: list) -> list:
    return TASK_BODIES[name](*[_in_task(a) for a in args])


class LocalBackend(Backend):
    name = "local"
    polls_cheaply = True

    def __init__(self, config):
        self.config = config
        self.parallelism = config.num_threads
        self.window = config.max_tasks_in_flight
        self.budget = MemoryBudget(config.memory_budget)
        self.udf_pools = None
        self.pool: ThreadPoolExecutor | None = None
        self._spill_dir: tempfile.TemporaryDirectory | None = None
        self.stats = None

    def start(self, plan, context) -> None:
        use_prompt_allocator()
        self.budget = MemoryBudget(context.config.memory_budget)
        self.stats = context.stats
        in_processes = any(isinstance(op, MapBatchesStep) and op.in_processes
                           for stage in plan.stages() for op in stage.operators)
        if in_processes:
            from .udf_pools import UdfPools  # worker-process machinery, loaded only by plans that use it
            self.udf_pools = UdfPools(context, self.budget)
            self.sample_workers = True
        # Threads that wait on worker processes use no CPU: twice as many keep the workers fed.
        threads = context.config.num_threads * (2 if in_processes else 1)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sluice")

    def close(self, failed: bool, abandon_running: bool = False) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=not abandon_running, cancel_futures=True)
        if self.udf_pools is not None:
            self.udf_pools.close(failed)
        if self._spill_dir is not None:
            self._spill_dir.cleanup()

    def copies_blocks_to_workers(self, stage) -> bool:
        return any(isinstance(op, MapBatchesStep) and op.in_processes for op in stage.operators)

    def task_bytes(self, ceiling: int, floor: int) -> int:
        return self.budget.task_bytes(self.config.num_threads, ceiling, floor)

    def chain(self, spec: ChainSpec) -> LocalChain:
        return LocalChain(self, spec)

    def settle(self, ticket: Future) -> tuple[list, list[Report]]:
        result = ticket.result()
        return result[:-1], [result[-1]]

    def ready(self, ticket: Future, timeout: float) -> bool:
        return bool(wait([ticket], timeout=timeout).done)

    def withdraw(self, ticket: Future) -> bool:
        return ticket.cancel()  # succeeds only while the task waits for a thread

    def cancel(self, ticket: Future) -> None:
        ticket.cancel()

    def call(self, name: str, args: list, returns: int = 1) -> list:
        future = self.pool.submit(_call_body, name, [_in_driver(a) for a in args])
        return [FutureItem(future, index) for index in range(returns)]

    def fetch(self, handle):
        return _in_task(_in_driver(handle))

    def put(self, table: pa.Table):
        return table

    def exchange(self, schema: pa.Schema, partitions: int, stage_id: int) -> BufferedExchange:
        if self._spill_dir is None:
            self._spill_dir = tempfile.TemporaryDirectory(prefix="sluice-spill-", dir=self.config.spill_dir)
        return BufferedExchange(schema, partitions, self.budget, self._spill_dir.name, self.stats, stage_id)

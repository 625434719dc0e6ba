"""The backend interface: the little that differs between running on this machine and on Ray.

Why this module exists: the engine (stage_run.py, exchange.py, fused.py) plans and drives every
stage, exchange, checkpoint and quarantine the same way everywhere; a backend only supplies
how a task is submitted and waited for, where blocks and exchange pieces are held, and how
UDF pools start. `local` (backends/local) runs tasks on a thread pool under the memory budget
and keeps exchange pieces in buffers that spill; `ray` (backends/ray) submits Ray tasks and
actor calls and keeps pieces in the object store.

A *handle* is the backend's reference to data: a pyarrow Table (or a deferred read of
one) locally, an ObjectRef on Ray. The engine passes handles between tasks and only
`fetch`es what it must see (a broadcast side, the root stage's output).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from .task import ChainSpec, Report

WORK_FACTOR = 2  # a running task needs room for its input and its output (and the kernels' scratch)


@dataclass
class Out:
    """One finished task's data outputs (a block, or one piece per exchange partition) and its report."""

    handles: list
    report: Report
    key: str | None = None  # a map task that feeds a durable exchange: what it read, for the task log
    skipped: bool = False  # a write task an earlier attempt at this run finished: handed on, not run again
    identity: str | None = None  # what the task computed, the same in every attempt at the run (task keys)
    ops: list = field(default_factory=list)  # every part's operator statistics, logged with a finished write

    @property
    def rows(self) -> int:
        return self.report.output_rows

    @property
    def bytes(self) -> int:
        return sum(self.report.bytes)


class TaskChain(Protocol):
    """A stage's operator chain, ready to run over many items (submitted once per stage)."""

    def submit(self, kind: str, payload: Any, args: list, block: str) -> Any:
        """Start one task (task.run_task's kinds) over `args`, handles of its input; returns a ticket.
        `block` is the task's id in the run's events."""


class Admission(Protocol):
    """Memory admission for tasks in flight (backends/local/budget.py); Ray admits by count only."""

    reserved: int
    limit: int

    def try_reserve(self, nbytes: int, force: bool = False, share: float = 1.0) -> bool: ...

    def release(self, nbytes: int) -> None: ...


class Exchange(ABC):
    """One exchange's map-side output as the driver sees it: each partition's pieces, with sizes.

    A backend subclass says how pieces are held (`keep`, `pieces`, `release`) and how an earlier
    attempt's pieces on disk come back (`add_stored`).
    """

    def __init__(self, schema: pa.Schema, partitions: int):
        self.schema = schema
        self.partitions = partitions
        self.rows = [0] * partitions
        self.bytes = [0] * partitions
        self.stored = [0] * partitions  # bytes on disk per partition, once persisted
        self.durable = False  # a persisted exchange counts shuffle bytes as its files' bytes
        self.samples: list[pa.Table] = []

    def add(self, out: Out) -> None:
        for partition, (handle, rows, size) in enumerate(zip(out.handles, out.report.rows, out.report.bytes)):
            if rows:
                self.keep(partition, handle, rows, size)
                self.rows[partition] += rows
                self.bytes[partition] += size
        if out.report.sample is not None:
            self.samples.append(out.report.sample)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes)

    def read_bytes(self, partitions) -> int:
        """Shuffle bytes read for these partitions: their files' bytes when persisted, else in-memory bytes."""
        return sum((self.stored if self.durable else self.bytes)[p] for p in partitions)

    def refs(self, partitions) -> list:
        return [handle for p in partitions for handle, _, _ in self.pieces(p)]

    @abstractmethod
    def keep(self, partition: int, handle: Any, rows: int, size: int) -> None:
        """Hold one map task's piece of a partition."""

    @abstractmethod
    def pieces(self, partition: int) -> list[tuple[Any, int, int]]:
        """The partition's pieces as (handle, rows, bytes), in the order they were added."""

    @abstractmethod
    def release(self, partition: int) -> None:
        """Let go of a partition: the tasks given its handles still read them."""

    @abstractmethod
    def add_stored(self, partition: int, location, found: list[tuple[str, int, int]], rows: int, size: int,
                   stored: int) -> None:
        """Add (file, first batch, batches) ranges of a durable exchange's files (checkpoint.py) to a partition."""

    def close(self) -> None:
        """The stage is done with the exchange."""


class Backend(ABC):
    """Runs tasks for the engine; see the module docstring."""

    name = "backend"
    parallelism: int  # tasks that run at once
    window: int  # tasks a stage keeps in flight
    budget: Admission
    sample_workers: bool = False  # the run's memory samples count child processes
    polls_cheaply: bool = False  # `ready` costs next to nothing, so every wait for a task can poll

    def start(self, plan, context) -> None:
        """Before the run's first task: start pools, connect, size the window."""

    @abstractmethod
    def close(self, failed: bool, abandon_running: bool = False) -> None:
        """After the run: stop pools (gracefully unless it failed); with `abandon_running`, do not wait for
        tasks still running (a preempted run whose grace period is over)."""

    def copies_blocks_to_workers(self, stage) -> bool:
        """Whether this stage's tasks copy their blocks to UDF worker processes (one more copy in memory)."""
        return False

    @abstractmethod
    def task_bytes(self, ceiling: int, floor: int) -> int:
        """The data one task should take, so that every parallel task fits the memory budget."""

    @abstractmethod
    def chain(self, spec: ChainSpec) -> TaskChain:
        ...

    @abstractmethod
    def settle(self, ticket) -> tuple[list, list[Report]]:
        """Wait for a task: its output handles and its reports (one per part the backend ran it in);
        raise the exception the task raised (with its report as `task_report` where known)."""

    @abstractmethod
    def ready(self, ticket, timeout: float) -> bool:
        """Whether a task has finished, waiting up to `timeout` seconds."""

    def withdraw(self, ticket) -> bool:
        """Take back a task that has not started yet; False if it runs (or the backend cannot tell)."""
        return False

    def cancel(self, ticket) -> None:
        """Stop a task that is no longer wanted, where the backend can."""

    @abstractmethod
    def call(self, name: str, args: list, returns: int = 1) -> list:
        """Run one of split_tasks.py's task bodies over `args` (handles or values); `returns` handles."""

    @abstractmethod
    def fetch(self, handle) -> Any:
        ...

    @abstractmethod
    def put(self, table: pa.Table) -> Any:
        ...

    @abstractmethod
    def exchange(self, schema: pa.Schema, partitions: int, stage_id: int) -> Exchange:
        ...

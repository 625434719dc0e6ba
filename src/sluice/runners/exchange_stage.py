"""The part of running an exchange stage that every runner does the same way.

Which exchanges a stage needs (a join's two sides, a sort's key ranges, or one hash
exchange for an aggregation or a distinct), in what order the adaptive steps run, how many
partitions an exchange gets when the plan fixed none, and what is recorded when a resumable
run has saved an exchange. A runner subclasses `ExchangeStage` and supplies the mechanics:
how blocks are partitioned and held (local: buffers that spill; Ray: object refs), and how
reduce tasks run. The decisions themselves are pure functions in plan/adaptive.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from ..observe.stats import RunStats
from ..plan import adaptive
from ..plan.exchange import RangePartitioner, SinglePartitioner
from ..plan.physical import ShuffleRead, Stage
from ..reliability.crash_points import crash_point


class ExchangeStage(ABC):
    """Subclasses set `stage` and `stats`, and implement the underscored steps used below."""

    stage: Stage
    stats: RunStats

    @property
    @abstractmethod
    def reduce_task_bytes(self) -> int:
        """The data one reduce task should read."""

    @property
    @abstractmethod
    def parallelism(self) -> int:
        """How many tasks run at once."""

    def exchange_outputs(self) -> Iterator[Any]:
        """The stage's outputs (blocks, or a runner's handles to them), reduce task by reduce task."""
        stage = self.stage
        if stage.join is not None:
            yield from self._join()
        elif isinstance(stage.shuffle[0].partitioner, RangePartitioner):
            yield from self._sort()
        else:
            partitions = stage.fixed_partitions or self._default_partitions(stage.shuffle[0])
            exchange = self._map_side(stage.shuffle[0], partitions)
            split = self._holistic_skew(exchange)
            yield from self._reduce([exchange], self._plan_items([exchange], exclude=split))
            for partition in sorted(split):
                yield self._split_aggregate(exchange, partition)

    def _default_partitions(self, *reads: ShuffleRead) -> int:
        if all(isinstance(r.partitioner, SinglePartitioner) for r in reads):
            return 1
        return adaptive.default_partitions(sum(r.estimated_bytes or 0 for r in reads), self.reduce_task_bytes,
                                           self.parallelism)

    def _exchange_saved(self, rows: int, written: int, directory: str) -> None:
        """A resumable run's exchange is on disk, complete: a crash from here on restores it."""
        self.stats.add_shuffle(written=written)
        self.stats.emit("checkpoint", stage=self.stage.id, what="exchange saved",
                        detail=f"{rows:,} rows, {written:,} bytes written in {directory}")
        crash_point("after-exchange")  # after the event, so the event log says where the crash landed

    # the runner's mechanics
    @abstractmethod
    def _join(self) -> Iterator[Any]:
        ...

    @abstractmethod
    def _sort(self) -> Iterator[Any]:
        ...

    @abstractmethod
    def _map_side(self, read: ShuffleRead, partitions: int) -> Any:
        ...

    @abstractmethod
    def _holistic_skew(self, exchange: Any) -> set[int]:
        ...

    @abstractmethod
    def _plan_items(self, exchanges: list, exclude: set[int] | frozenset = frozenset()) -> list:
        ...

    @abstractmethod
    def _reduce(self, exchanges: list, items: list) -> Iterator[Any]:
        ...

    @abstractmethod
    def _split_aggregate(self, exchange: Any, partition: int) -> Any:
        ...

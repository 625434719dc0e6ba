"""The part of running an exchange stage that every runner does the same way.

Which exchanges a stage needs (a join's two sides, a sort's key ranges, or one hash
exchange for an aggregation or a distinct), when a join broadcasts its build side, in what
order the adaptive steps run, how many partitions an exchange gets when the plan fixed none,
and what is recorded when a resumable run has saved an exchange. A runner subclasses
`ExchangeStage` and supplies the mechanics: how blocks are partitioned and held (local:
buffers that spill; Ray: object refs), how a collected build side is broadcast, and how
reduce tasks run. The decisions themselves are pure functions in plan/adaptive.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from ..config import Config
from ..observe.stats import RunStats, format_bytes
from ..plan import adaptive
from ..plan.exchange import RangePartitioner, SinglePartitioner
from ..plan.physical import ShuffleRead, Stage
from ..reliability.crash_points import crash_point


class ExchangeStage(ABC):
    """Subclasses set `stage`, `stats` and `config`, and implement the underscored steps used below."""

    stage: Stage
    stats: RunStats
    config: Config

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

    def _join(self) -> Iterator[Any]:
        """Collect the build side; broadcast it when planned, or when it measured under the threshold;
        else hash-partition both sides and join partition by partition."""
        plan = self.stage.join
        build_read, probe_read = self.stage.shuffle[plan.build], self.stage.shuffle[1 - plan.build]
        side = "left" if plan.build == 0 else "right"
        partitions = self._default_partitions(*self.stage.shuffle)
        if plan.can_broadcast:
            collected = self._map_side(build_read, 1, SinglePartitioner())
            size, threshold = collected.total_bytes, self.config.broadcast_threshold
            if plan.strategy == "broadcast" or (self.config.adaptive and size < threshold):
                how = "as planned" if plan.strategy == "broadcast" else "adaptive: switched from shuffle"
                self._note(f"{side} side measured {format_bytes(size)}: broadcast ({how})")
                yield from self._broadcast(collected, probe_read)
                return
            self._note(f"{side} side measured {format_bytes(size)} >= {format_bytes(threshold)}: shuffle")
            build = self._repartition(collected, build_read.partitioner, partitions)
        else:
            build = self._map_side(build_read, partitions)
        probe = self._map_side(probe_read, partitions)
        exchanges = [build, probe] if plan.build == 0 else [probe, build]
        yield from self._reduce(exchanges, self._plan_items(exchanges, None if plan.build_is_preserved
                                                            else 1 - plan.build))

    def _note(self, text: str) -> None:
        self.stats.note(f"stage {self.stage.id}: {text}")

    def _exchange_saved(self, rows: int, written: int, directory: str) -> None:
        """A resumable run's exchange is on disk, complete: a crash from here on restores it."""
        self.stats.add_shuffle(written=written)
        self.stats.emit("checkpoint", stage=self.stage.id, what="exchange saved",
                        detail=f"{rows:,} rows, {written:,} bytes written in {directory}")
        crash_point("after-exchange")  # after the event, so the event log says where the crash landed

    # the runner's mechanics
    @abstractmethod
    def _broadcast(self, collected: Any, probe_read: ShuffleRead) -> Iterator[Any]:
        """Join each block of the probe side with the whole collected build side (one partition)."""

    @abstractmethod
    def _repartition(self, source: Any, partitioner: Any, partitions: int) -> Any:
        """A new exchange: `source`'s rows split again by `partitioner`."""

    @abstractmethod
    def _sort(self) -> Iterator[Any]:
        ...

    @abstractmethod
    def _map_side(self, read: ShuffleRead, partitions: int, partitioner: Any = None) -> Any:
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

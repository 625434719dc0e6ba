"""Running a stage that reads through an exchange, with adaptive decisions.

The map side runs each upstream stage to completion, with the exchange's prepare step and
partitioner applied inside the pool, and fills an `ExchangeBuffer` per input. Then real
partition sizes are known, and the adaptive rules apply:

- coalesce adjacent small partitions into reduce tasks of about `target_partition_bytes`;
- split a skewed partition of a join's streamed side (over `skew_factor` x the median and
  over `skew_min_bytes`) into slices, each joined with the whole matching partition of the
  other side, and report the hot keys with their row counts;
- collect a join's build side first, and when it measures under the broadcast threshold,
  stream the other side through a broadcast join instead of shuffling it.

A sort samples its keys on the map side, draws range boundaries from the sample, and
range-partitions the buffered blocks; reduce tasks sort their partition and run in order.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import pyarrow as pa
from pyarrow.parquet import read_table, write_table

from ...plan import adaptive, holistic_split
from ...plan.exchange import Partitioner, RangePartitioner, SinglePartitioner, sample_keys
from ...plan.physical import PhysicalPlan, ShuffleRead
from ...reliability.run_store import exchange_key
from ...types import arrow_to_polars, polars_to_arrow
from ..exchange_stage import ExchangeStage
from .buffer import ExchangeBuffer
from .exchange_checkpoint import ExchangeCheckpoint

if TYPE_CHECKING:
    from .executor import _StageRun

SAMPLES_FILE = "samples.parquet"  # a persisted sort exchange keeps its key sample, to draw the same ranges


@dataclass
class ReduceItem:
    partitions: tuple[int, ...]
    estimate: int
    inputs: list[pa.Table] | None = None  # pre-read inputs, for the slices of a split partition
    key: str = ""  # names the task in a resumable run's completion log
    releases: tuple[int, ...] = field(default=())  # partitions this item is the last user of


class ShuffleStage(ExchangeStage):
    def __init__(self, run: _StageRun):
        self.run = run
        self.stage = run.stage
        self.context = run.context
        self.config = run.context.config
        self.stats = run.context.stats
        self.buffers: list[ExchangeBuffer] = []
        self._spill_dir: tempfile.TemporaryDirectory | None = None

    @property
    def spill_dir(self) -> str:
        if self._spill_dir is None:
            self._spill_dir = tempfile.TemporaryDirectory(prefix="sluice-spill-", dir=self.config.spill_dir)
        return self._spill_dir.name

    def blocks(self) -> Iterator[pa.Table]:
        try:
            yield from self.exchange_outputs()
        finally:
            for buffer in self.buffers:
                buffer.close()
            if self._spill_dir is not None:
                self._spill_dir.cleanup()

    @property
    def reduce_task_bytes(self) -> int:
        """The configured target, smaller when the memory budget is small."""
        return self.run.budget.task_bytes(self.config.num_threads, self.config.target_partition_bytes, 1 << 20)

    @property
    def parallelism(self) -> int:
        return self.config.num_threads

    # ------------------------------------------------------------ map side

    def _new_buffer(self, schema: pa.Schema, partitions: int, label: str, durable: bool = False) -> ExchangeBuffer:
        buffer = ExchangeBuffer(f"s{self.stage.id}-{label}-{len(self.buffers)}", schema, partitions,
                                self.run.budget, self.spill_dir, self.stats, durable, self.stage.id)
        self.buffers.append(buffer)
        return buffer

    def _map_side(self, read: ShuffleRead, partitions: int, partitioner: Partitioner | None = None,
                  samples: list[pa.Table] | None = None) -> ExchangeBuffer:
        """Run the upstream into a new buffer. A resumable run keeps the exchange on disk as it fills
        (exchange_checkpoint.py) and, resumed, restores what an earlier attempt finished."""
        store = self.context.store
        if store is None:
            return self._fill(read, partitions, partitioner, samples)
        directory = store.exchange_dir(exchange_key(
            PhysicalPlan(read.upstream).explain(), read.partitioner, read.prepare, partitioner, partitions))
        buffer = self._new_buffer(read.schema, partitions, f"from{read.upstream.id}", durable=True)
        samples_path = os.path.join(directory, SAMPLES_FILE)
        if (samples is None or os.path.isfile(samples_path)) and ExchangeCheckpoint.load_complete(directory, buffer):
            if samples is not None:
                samples.append(read_table(samples_path))
            self.stats.emit("checkpoint", stage=self.stage.id, what="exchange restored",
                            detail=f"{buffer.total_rows:,} rows from stage {read.upstream.id}, {directory}")
            self.stats.note(f"stage {self.stage.id}: restored the exchange from stage {read.upstream.id} "
                            f"({buffer.total_rows:,} rows) from an earlier attempt at this run")
            return buffer
        checkpoint = ExchangeCheckpoint(directory, read.schema, partitions)
        checkpoint.restore_into(buffer)
        self._fill(read, partitions, partitioner, samples, buffer, checkpoint)
        if not checkpoint.keyed:
            checkpoint.save_all(buffer)
        if samples:
            write_table(pa.concat_tables(samples, promote_options="permissive"), samples_path)
        checkpoint.finish(buffer)
        self._exchange_saved(buffer.total_rows, checkpoint.written, directory)
        return buffer

    def _fill(self, read: ShuffleRead, partitions: int, partitioner: Partitioner | None = None,
              samples: list[pa.Table] | None = None, buffer: ExchangeBuffer | None = None,
              checkpoint: ExchangeCheckpoint | None = None) -> ExchangeBuffer:
        partitioner = partitioner or read.partitioner
        buffer = buffer or self._new_buffer(read.schema, partitions, f"from{read.upstream.id}")
        sort_keys = list(read.partitioner.spec.by) if samples is not None else None  # type: ignore[attr-defined]

        def finish(block: pa.Table):
            if read.prepare is not None:
                block = self.run.timed(read.prepare, block)
            sample = sample_keys(block, sort_keys) if sort_keys else None
            return self.run.timed_partition(partitioner, block, partitions), sample

        for pieces, sample in self.run.upstream(read.upstream, finish, checkpoint):
            for partition, piece in pieces:
                buffer.add(partition, piece)
            if sample is not None:
                samples.append(sample)  # type: ignore[union-attr]
        return buffer

    def _repartition(self, source: ExchangeBuffer, partitioner: Partitioner, partitions: int) -> ExchangeBuffer:
        target = self._new_buffer(source.schema, partitions, "re")
        work = lambda block: self.run.timed_partition(partitioner, block, partitions)  # noqa: E731
        block_bytes = min(self.reduce_task_bytes, adaptive.REPARTITION_BLOCK_BYTES)
        for partition in range(source.num_partitions):
            blocks = (pa.concat_tables(group, promote_options="permissive") if len(group) > 1 else group[0]
                      for group in adaptive.consecutive_groups(source.iter_blocks(partition), _nbytes, block_bytes))
            for pieces in self.run.parallel(work, ((b, b.nbytes) for b in blocks)):
                for index, piece in pieces:
                    target.add(index, piece)
            self.stats.add_shuffle(read=source.stored[partition] if any(source.stored) else source.bytes[partition])
            source.release(partition)
        return target

    # ------------------------------------------------------------ joins

    def _broadcast(self, collected: ExchangeBuffer, probe_read: ShuffleRead) -> Iterator[pa.Table]:
        build = collected.read([0])
        reducer = self.stage.reducer
        build_is_left = self.stage.join.build == 0

        def finish(block: pa.Table) -> pa.Table:
            inputs = [build, block] if build_is_left else [block, build]
            joined = self.run.timed_reduce(reducer, inputs)
            return self.run.process(joined)

        yield from self.run.upstream(probe_read.upstream, finish)

    # ------------------------------------------------------------ sort

    def _sort(self) -> Iterator[pa.Table]:
        read = self.stage.shuffle[0]
        samples: list[pa.Table] = []
        staged = self._map_side(read, 1, SinglePartitioner(), samples=samples)
        partitions = adaptive.sort_partitions(staged.total_bytes, self.reduce_task_bytes, self.parallelism)
        sample = pa.concat_tables(samples, promote_options="permissive") if samples else None
        partitioner = read.partitioner.with_boundaries(sample, partitions) if sample is not None else \
            RangePartitioner(read.partitioner.spec)  # type: ignore[attr-defined]
        ranged = self._repartition(staged, partitioner, partitioner.boundaries.num_rows + 1
                                   if partitioner.boundaries is not None else 1)
        items = [ReduceItem((p,), ranged.bytes[p], releases=(p,)) for p in range(ranged.num_partitions)
                 if ranged.rows[p]]
        yield from self._reduce([ranged], items)

    # ------------------------------------------------------------ reduce side

    def _plan_items(self, buffers: list[ExchangeBuffer], probe_index: int | None = None,
                    exclude: set[int] = frozenset()) -> list[ReduceItem]:
        plan, sizes = adaptive.plan_exchange_reduce(self.stage, self.stats, buffers, self.reduce_task_bytes, self.config,
                                                    probe_index, exclude)
        for note in plan.notes:
            self._note(note)
        self._chunk_rows = plan.chunk_rows
        items = [ReduceItem(group, sum(sizes[p] for p in group), releases=group) for group in plan.groups]
        for partition in plan.skewed:
            items += self._split(buffers, probe_index, partition, self._chunk_rows)
        return items

    # ------------------------------------------------------------ holistic aggregates on skewed keys

    def _holistic_skew(self, buffer: ExchangeBuffer) -> set[int]:
        """Skewed partitions of a raw-row aggregation that can be aggregated in two levels."""
        found, note = adaptive.holistic_skew(self.stage.reducer, buffer.schema, buffer.rows, buffer.bytes,
                                             self.config, bool(self.stage.fixed_partitions))
        if note:
            self._note(note)
        return found

    def _split_aggregate(self, buffer: ExchangeBuffer, partition: int) -> pa.Table:
        """A skewed partition, sliced by value and aggregated in parallel (see plan/holistic_split.py)."""
        plan = self.stage.reducer.plan
        table = buffer.read([partition])
        self._report_hot_keys(table, list(plan.keys))
        frame = arrow_to_polars(table)
        output_schema = frame.clear().group_by(list(plan.keys)).agg(plan.single()).schema
        split = holistic_split.plan_split(
            plan, frame, holistic_split.slice_count(table.num_rows, self._chunk_rows, self.parallelism))
        slices = holistic_split.assign_slices(split, frame)
        del frame, table
        buffer.release(partition)
        self._note(f"split skewed partition {partition} ({sum(len(f) for f in slices):,} rows) into "
                   f"{len(slices)} slices by {'value range' if split.ranked else 'value hash'}, aggregated in two levels")
        for piece in slices:
            self.stats.add_reduce_task(self.stage.id, len(piece))

        def level(name, fn, items):
            work = lambda item: self.run.measured(name, 0, 0, lambda: fn(item), len, lambda f: f.estimated_size())  # noqa: E731
            return list(self.run.parallel(work, ((item, 1) for item in items)))

        partials = level("SplitAggregate", lambda piece: holistic_split.slice_partials(split, piece), slices)
        picked = None
        if split.ranked:
            wanted = holistic_split.wanted_ranks(split, partials)
            picked = level("SplitRanks", lambda pair: holistic_split.values_at_ranks(split, *pair),
                           list(zip(slices, wanted)))
        merged = holistic_split.merge(split, partials, picked, output_schema)
        return self.run.process(polars_to_arrow(merged))

    def _split(self, buffers, probe_index: int, partition: int, chunk_rows: int) -> list[ReduceItem]:
        """Slices of a skewed partition's streamed side, each with the whole other side."""
        probe_table = buffers[probe_index].read([partition])
        other_table = buffers[1 - probe_index].read([partition])
        node = self.stage.reducer.node
        self._report_hot_keys(probe_table, list(node.left_on if probe_index == 0 else node.right_on))
        slices = [probe_table.slice(start, chunk_rows) for start in range(0, probe_table.num_rows, chunk_rows)]
        self._note(f"split skewed partition {partition} ({probe_table.num_rows:,} rows) into {len(slices)} tasks")
        items = []
        for index, piece in enumerate(slices):
            inputs = [other_table, piece] if probe_index == 1 else [piece, other_table]
            last = index == len(slices) - 1
            items.append(ReduceItem((partition,), piece.nbytes + other_table.nbytes, inputs,
                                    releases=(partition,) if last else ()))
        return items

    def _report_hot_keys(self, table: pa.Table, keys: list[str]) -> None:
        self.stats.skewed_keys.extend(adaptive.hot_keys(table, keys, self.stage.id))

    def _reduce(self, buffers: list[ExchangeBuffer], items: list[ReduceItem]) -> Iterator[pa.Table]:
        reducer = self.stage.reducer

        def work(item: ReduceItem) -> pa.Table:
            inputs = item.inputs if item.inputs is not None else [b.read(item.partitions) for b in buffers]
            self.stats.add_reduce_task(self.stage.id, sum(t.num_rows for t in inputs))
            return self.run.process(self.run.timed_reduce(reducer, inputs))

        for item, key in zip(items, adaptive.reduce_keys(self.stage.id, [i.partitions for i in items])):
            item.key = key
        items, skipped = self.run.skip_completed(items, lambda i: i.key)
        yield from skipped
        pending = iter(items)
        for item, block in zip(pending, self.run.parallel(work, ((i, i.estimate) for i in items), lambda i: i.key)):
            for partition in item.releases:
                for buffer in buffers:
                    buffer.release(partition)
            yield block


def _nbytes(block: pa.Table) -> int:
    return block.nbytes

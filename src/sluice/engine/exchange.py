"""Running a stage that reads through an exchange, with adaptive decisions, on any backend.

Why this module exists: it is the driver half of a wide stage (join, aggregation, distinct,
sort, window, repartition). The upstream stage's tasks end with the exchange's prepare step
and partitioner (a `MapSpec`), and return each partition's piece as its own output plus a
report of rows and bytes per partition; the backend holds the pieces (local: buffers that
spill; Ray: the object store). Once the map side is done, the real partition sizes are known
and the adaptive rules apply (pure functions in physical/adaptive.py):

- coalesce adjacent small partitions into reduce tasks of about the task size;
- a join collects its build side first, and when it measures under the broadcast threshold,
  it is fetched once, put once, and joined with each block of the other side (no shuffle of
  the other side); otherwise both sides are hash-partitioned;
- a skewed partition of a join's streamed side is cut into slices, each joined with the whole
  matching partition of the other side; its hot keys are reported;
- a skewed partition of a raw-row (holistic) aggregation is aggregated in two levels
  (split_tasks.py);
- a sort samples its keys in the map tasks, draws range boundaries, range-partitions the
  staged pieces and sorts each partition in a reduce task, in order.

Reduce tasks run the stage's operators and, when a downstream exchange waits, its partitioner.
A resumable (writing) run keeps each map task's output in its run store as the task finishes
(checkpoint.py); a resumed run restores a complete exchange, or the map tasks that finished,
and runs only the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from ..crash_points import crash_point
from ..expr.types import arrow_to_polars, polars_to_arrow
from ..observe.stats import format_bytes
from ..physical import adaptive, holistic_split
from ..physical.exchange import Partitioner, RangePartitioner, SinglePartitioner
from ..physical.stages import JoinStage, PhysicalPlan, ShuffleRead, SortStage
from ..reliability.run_store import exchange_key
from .backend import Exchange, Out
from .checkpoint import DurableExchange
from .task import MapSpec


def semi_join_keys(node, build: pa.Table, build_index: int) -> pa.Table:
    """A semi or anti join's right side only says which keys exist: its distinct keys are enough, and
    every task that joins with it builds a smaller hash table."""
    if node.how not in ("semi", "anti") or build_index != 1 or build.num_rows == 0:
        return build
    keys = list(node.right_on)
    return polars_to_arrow(arrow_to_polars(build.select(keys)).unique())


@dataclass
class ReduceItem:
    partitions: tuple[int, ...]
    refs: list | None = None  # prebuilt arguments, for the slices of a split partition
    counts: list | None = None
    cut: tuple | None = None  # (input, first row, rows) of a slice
    releases: tuple[int, ...] = field(default=())  # partitions this item is the last user of
    key: str = ""
    estimate: int = 0


class ExchangeRun:
    def __init__(self, owner):
        self.owner = owner  # the StageRun of this stage
        self.backend = owner.backend
        self.stage = owner.stage
        self.config = owner.context.config
        self.stats = owner.context.stats
        self.exchanges: list[Exchange] = []
        self._chunk_rows = 1

    @property
    def reduce_task_bytes(self) -> int:
        """The data one reduce task should read: the configured target, smaller when the budget is small."""
        return self.backend.task_bytes(self.config.target_partition_bytes, 1 << 20)

    @property
    def parallelism(self) -> int:
        return self.backend.parallelism

    def outputs(self) -> Iterator[Out]:
        """The stage's outputs, reduce task by reduce task."""
        try:
            stage = self.stage
            if isinstance(stage, JoinStage):
                yield from self._join()
            elif isinstance(stage, SortStage):
                yield from self._sort()
            else:
                partitions = stage.fixed_partitions or self._default_partitions(stage.read)
                exchange = self._map_side(stage.read, partitions)
                split = self._holistic_skew(exchange)
                yield from self._reduce([exchange], self._plan_items([exchange], exclude=split))
                for partition in sorted(split):
                    yield self._split_aggregate(exchange, partition)
        finally:
            for exchange in self.exchanges:
                exchange.close()

    def _default_partitions(self, *reads: ShuffleRead) -> int:
        if all(isinstance(r.partitioner, SinglePartitioner) for r in reads):
            return 1
        return adaptive.default_partitions(sum(r.estimated_bytes or 0 for r in reads), self.reduce_task_bytes,
                                           self.parallelism)

    def _note(self, text: str) -> None:
        self.stats.note(f"stage {self.stage.id}: {text}")

    def _new_exchange(self, schema: pa.Schema, partitions: int) -> Exchange:
        exchange = self.backend.exchange(schema, partitions, self.stage.id)
        self.exchanges.append(exchange)
        return exchange

    # ------------------------------------------------------------ map side

    def _map_side(self, read: ShuffleRead, partitions: int, partitioner: Partitioner | None = None,
                  samples: bool = False) -> Exchange:
        """Run the upstream into a new exchange. A resumable run keeps the exchange in its run store as it
        fills (checkpoint.py) and, resumed, restores what an earlier attempt finished."""
        store = self.owner.context.store
        if store is None:
            return self._fill(read, partitions, partitioner, samples)
        directory = store.exchange_dir(exchange_key(
            PhysicalPlan(read.upstream).explain(), read.partitioner, read.prepare, partitioner, partitions))
        checkpoint = DurableExchange(directory, read.schema, partitions)
        restored = self._new_exchange(read.schema, partitions)
        if checkpoint.restore_complete(restored, samples):
            checkpoint.count_restored(self.stats)
            rows = sum(restored.rows)
            self.stats.emit("checkpoint", stage=self.stage.id, what="exchange restored",
                            detail=f"{rows:,} rows from stage {read.upstream.id}, {directory}")
            self._note(f"restored the exchange from stage {read.upstream.id} ({rows:,} rows) from an "
                       f"earlier attempt at this run")
            return restored
        exchange = self._fill(read, partitions, partitioner, samples, checkpoint, restored)
        checkpoint.finish(exchange)
        self.stats.add_shuffle(written=checkpoint.written)
        self.stats.emit("checkpoint", stage=self.stage.id, what="exchange saved",
                        detail=f"{sum(exchange.rows):,} rows, {checkpoint.written:,} bytes written in {directory}")
        crash_point("after-exchange")  # after the event, so the event log says where the crash landed
        return exchange

    def _fill(self, read: ShuffleRead, partitions: int, partitioner: Partitioner | None, samples: bool,
              checkpoint: DurableExchange | None = None, exchange: Exchange | None = None) -> Exchange:
        keys = tuple(read.partitioner.spec.by) if samples else None  # type: ignore[attr-defined]
        finish = MapSpec(self.stage.id, partitions, partitioner or read.partitioner, read.prepare, keys,
                         checkpoint.location if checkpoint else None, read.schema)
        exchange = exchange or self._new_exchange(read.schema, partitions)
        if checkpoint is not None:
            checkpoint.restore_into(exchange, self.stats)
        for out in self.owner.upstream(read.upstream, finish, checkpoint):
            exchange.add(out)
            if checkpoint is not None:
                if out.key is not None and self.owner.context.has_dead_letters:
                    self.owner.context.dead_letters.flush()  # a resume that restores this task keeps its bad records
                checkpoint.record(out.key, out.report.saved, exchange, out.ops)
        if checkpoint is None:
            self.stats.add_shuffle(written=exchange.total_bytes)
        return exchange

    def _repartition(self, source: Exchange, partitioner: Partitioner, partitions: int) -> Exchange:
        """A new exchange: `source`'s rows split again by `partitioner`, a group of its pieces per task."""
        target = self._new_exchange(source.schema, partitions)
        chain = self.backend.chain(self.owner.spec(operators=(), finish=MapSpec(self.stage.id, partitions,
                                                                                 partitioner)))
        pieces = [piece for p in range(source.partitions) for piece in source.pieces(p)]
        groups = adaptive.consecutive_groups(pieces, lambda piece: piece[2], min(self.reduce_task_bytes,
                                                                                  adaptive.REPARTITION_BLOCK_BYTES))
        for out in self.owner.parallel(groups, lambda group, block: self.owner.submit(
                chain, "blocks", [None] * len(group), [piece[0] for piece in group], block, {}),
                lambda group: sum(piece[2] for piece in group)):
            target.add(out)
        self.stats.add_shuffle(read=source.read_bytes(range(source.partitions)), written=target.total_bytes)
        for partition in range(source.partitions):
            source.release(partition)
        return target

    # ------------------------------------------------------------ joins

    def _join(self) -> Iterator[Out]:
        """Collect the build side; broadcast it when planned, or when it measured under the threshold;
        else hash-partition both sides and join partition by partition."""
        stage = self.stage
        plan = stage.join
        build_read, probe_read = stage.reads[plan.build], stage.reads[1 - plan.build]
        side = "left" if plan.build == 0 else "right"
        partitions = self._default_partitions(*stage.reads)
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

    def _broadcast(self, collected: Exchange, probe_read: ShuffleRead) -> Iterator[Out]:
        """The build side fetched once and put once; each batch of the other side's blocks is joined with
        it where the blocks are. A task builds the build side's hash table again, so a batch holds at
        least the build side's bytes of probe blocks (up to a task's size): a small probe side that
        arrives in many blocks is joined in few tasks, a large one in parallel."""
        tables = [self.backend.fetch(handle) for handle in collected.refs([0])]
        build = pa.concat_tables(tables, promote_options="permissive") if tables else collected.schema.empty_table()
        self.stats.add_shuffle(read=collected.read_bytes([0]) if collected.durable else build.nbytes)
        collected.release(0)
        build = semi_join_keys(self.stage.reducer.node, build, self.stage.join.build)
        build_bytes = build.nbytes
        build_handle = self.backend.put(build)
        del tables, build
        build_is_left = self.stage.join.build == 0
        chain = self.backend.chain(self.owner.spec(reducer=self.stage.reducer,
                                                   input_schemas=tuple(r.schema for r in self.stage.reads)))

        def submit(batch: list[Out], block: str):
            probes = [out.handles[0] for out in batch]
            args, counts = ([build_handle, *probes], [1, len(probes)]) if build_is_left else \
                ([*probes, build_handle], [len(probes), 1])
            return self.owner.submit(chain, "reduce", (counts, None), args, block, {})

        batch_bytes = max(1, min(build_bytes, self.reduce_task_bytes))
        batches = adaptive.batches_of_at_least(self.owner.upstream(probe_read.upstream), lambda out: out.bytes,
                                               batch_bytes)
        yield from self.owner.parallel(batches, submit, lambda batch: sum(o.bytes for o in batch) + build_bytes)

    # ------------------------------------------------------------ sort

    def _sort(self) -> Iterator[Out]:
        read = self.stage.read
        staged = self._map_side(read, 1, SinglePartitioner(), samples=True)
        partitions = adaptive.sort_partitions(staged.total_bytes, self.reduce_task_bytes, self.parallelism)
        sample = pa.concat_tables(staged.samples, promote_options="permissive") if staged.samples else None
        partitioner = read.partitioner.with_boundaries(sample, partitions) if sample is not None else \
            RangePartitioner(read.partitioner.spec)  # type: ignore[attr-defined]
        count = partitioner.boundaries.num_rows + 1 if partitioner.boundaries is not None else 1
        ranged = staged if count == 1 else self._repartition(staged, partitioner, count)
        items = [ReduceItem((p,), releases=(p,), estimate=ranged.bytes[p]) for p in range(ranged.partitions)
                 if ranged.rows[p]]
        yield from self._reduce([ranged], items)

    # ------------------------------------------------------------ reduce side

    def _plan_items(self, exchanges: list[Exchange], probe_index: int | None = None,
                    exclude: set[int] = frozenset()) -> list[ReduceItem]:
        stage = self.stage
        plan, sizes = adaptive.plan_exchange_reduce(stage.id, self.stats, exchanges, self.reduce_task_bytes,
                                                    self.config, probe_index, exclude,
                                                    fixed=bool(stage.fixed_partitions),
                                                    when_empty=stage.reduce_when_empty)
        for note in plan.notes:
            self._note(note)
        self._chunk_rows = plan.chunk_rows
        items = [ReduceItem(group, releases=group, estimate=sum(sizes[p] for p in group)) for group in plan.groups]
        for partition in plan.skewed:
            items += self._split(exchanges, probe_index, partition)
        return items

    def _split(self, exchanges: list[Exchange], probe_index: int, partition: int) -> list[ReduceItem]:
        """Slices of a skewed partition's streamed side, each with the whole matching other side."""
        probe, other = exchanges[probe_index], exchanges[1 - probe_index]
        node = self.stage.reducer.node
        keys = list(node.left_on if probe_index == 0 else node.right_on)
        probe_pieces = probe.pieces(partition)
        probe_refs = [handle for handle, _, _ in probe_pieces]
        (found,) = self.backend.call("hot_keys_task", [self.stage.id, keys, *probe_refs])
        self.stats.add_skewed_keys(self.backend.fetch(found))
        other_refs = other.refs([partition])
        self.stats.add_shuffle(read=probe.read_bytes([partition]) + other.read_bytes([partition]))
        cuts = adaptive.slices([rows for _, rows, _ in probe_pieces], self._chunk_rows)
        self._note(f"split skewed partition {partition} ({probe.rows[partition]:,} rows) into {len(cuts)} tasks")
        other_bytes = other.bytes[partition]
        per_row = probe.bytes[partition] / max(1, probe.rows[partition])
        items = []
        for index, cut in enumerate(cuts):
            used = [probe_refs[piece] for piece, _, _ in cut]
            inputs = [used, other_refs] if probe_index == 0 else [other_refs, used]
            last = index == len(cuts) - 1
            rows = sum(count for _, _, count in cut)
            items.append(ReduceItem((partition,), [r for refs in inputs for r in refs], [len(r) for r in inputs],
                                    (probe_index, cut[0][1], rows), (partition,) if last else (),
                                    estimate=int(rows * per_row) + other_bytes))
        return items

    def _reduce(self, exchanges: list[Exchange], items: list[ReduceItem]) -> Iterator[Out]:
        chain = self.backend.chain(self.owner.spec(reducer=self.stage.reducer,
                                                   input_schemas=tuple(e.schema for e in exchanges)))
        for item, key in zip(items, adaptive.reduce_keys(self.stage.id, [i.partitions for i in items])):
            item.key = key
        items, skipped = self.owner.skip_completed(items, lambda i: i.key)
        yield from skipped

        def submit(item: ReduceItem, block: str):
            if item.refs is None:
                per_input = [e.refs(item.partitions) for e in exchanges]
                args, counts = [r for refs in per_input for r in refs], [len(refs) for refs in per_input]
                rows = sum(e.rows[p] for e in exchanges for p in item.partitions)
                size = sum(e.read_bytes(item.partitions) for e in exchanges)
            else:
                args, counts = item.refs, item.counts
                rows, size = item.cut[2], 0  # a slice: its rows of the streamed side
            self.stats.add_reduce_task(self.stage.id, rows)
            self.stats.add_shuffle(read=size)
            pending = self.owner.submit(chain, "reduce", (counts, item.cut), args, block,
                                        {"partitions": list(item.partitions)})
            for partition in item.releases:
                for exchange in exchanges:
                    exchange.release(partition)
            return pending

        yield from self.owner.parallel(items, submit, lambda item: item.estimate, lambda i: i.key)

    # ------------------------------------------------------------ holistic aggregates on skewed keys

    def _holistic_skew(self, exchange: Exchange) -> set[int]:
        """Skewed partitions of a raw-row aggregation that can be aggregated in two levels."""
        found, note = adaptive.holistic_skew(self.stage.reducer, exchange.schema, exchange.rows, exchange.bytes,
                                             self.config, bool(self.stage.fixed_partitions))
        if note:
            self._note(note)
        return found

    def _split_aggregate(self, exchange: Exchange, partition: int) -> Out:
        """A skewed partition, sliced by value and aggregated in parallel tasks (see split_tasks.py)."""
        backend, stage = self.backend, self.stage
        plan = stage.reducer.plan
        slices = holistic_split.slice_count(exchange.rows[partition], self._chunk_rows, self.parallelism)
        spec = self.owner.spec(reducer=stage.reducer, input_schemas=(exchange.schema,))
        refs = backend.call("split_assign", [spec, slices, *exchange.refs([partition])], returns=slices + 3)
        exchange.release(partition)
        frames, split, schema = refs[:slices], refs[slices], refs[slices + 1]
        block = f"s{stage.id}-split{partition}"
        report = backend.fetch(refs[slices + 2])
        self.owner.fold(report, block, {"partitions": [partition]})
        frames = frames[:len(report.slice_rows)]
        ranked = any(a.fn in holistic_split.RANKED for a in plan.outputs)
        self._note(f"split skewed partition {partition} ({sum(report.slice_rows):,} rows) into {len(frames)} slices "
                   f"by {'value range' if ranked else 'value hash'}, aggregated in two levels")
        for rows in report.slice_rows:
            self.stats.add_reduce_task(stage.id, rows)
        partials = self._level("split_partials", block, [[stage.id, split, f] for f in frames])
        picked = []
        if ranked:
            wanted = backend.call("split_wanted", [split, *partials], returns=len(frames))
            picked = self._level("split_values", block, [[stage.id, split, f, w] for f, w in zip(frames, wanted)])
        chain = backend.chain(self.owner.spec())
        pending = self.owner.submit(chain, "merge", (len(frames), ranked), [split, schema, *partials, *picked],
                                    block, {})
        return self.owner.settle(pending)

    def _level(self, name: str, block: str, calls: list[list]) -> list:
        """One parallel level of a split: a task per slice; their reports folded in; their outputs' handles."""
        outputs, reports = [], []
        for args in calls:
            result, report = self.backend.call(name, args, returns=2)
            outputs.append(result)
            reports.append(report)
        for number, handle in enumerate(reports):
            self.owner.fold(self.backend.fetch(handle), f"{block}-{name}{number}", {})
        return outputs

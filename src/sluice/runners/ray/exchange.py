"""Exchanges on Ray: map tasks with one return per partition, reduce tasks fed by object refs.

Why this module exists: it is the driver half of a wide stage (join, aggregation, distinct,
sort, window, repartition). The upstream stage's tasks end with the exchange's prepare step
and partitioner, and return each partition's piece as its own object plus a report of rows
and bytes per partition; nothing is fetched. Once the map side is done, the driver knows the
real partition sizes and applies the adaptive rules both runners share (plan/adaptive.py):

- coalesce adjacent small partitions into reduce tasks of about the task size;
- a join collects its build side first, and when it measures under the broadcast threshold,
  it is fetched once, `ray.put` once, and joined with each block of the other side where that
  block is (no shuffle of the other side); otherwise both sides are hash-partitioned;
- a skewed partition of a join's streamed side is cut into slices, each joined with the whole
  matching partition of the other side; its hot keys are reported;
- a skewed partition of a raw-row (holistic) aggregation is aggregated in two levels
  (holistic.py);
- a sort samples its keys in the map tasks, draws range boundaries, range-partitions the
  staged blocks and sorts each partition in a reduce task, in order.

Reduce tasks get their pieces as top-level ObjectRef arguments, so Ray's locality-aware
scheduling places each task on the node that holds the most bytes of its input; no explicit
node affinity is set. A resumable (writing) run keeps each map task's output in its run store
as the task finishes, in the local runner's layout (persist.py); a resumed run restores a
complete exchange, or the map tasks that finished, and runs only the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from ...plan import adaptive, holistic_split
from ...plan.exchange import Partitioner, RangePartitioner, SinglePartitioner
from ...plan.physical import PhysicalPlan, ShuffleRead
from ...reliability.run_store import exchange_key
from ..exchange_stage import ExchangeStage
from . import persist
from .executor import Chain, Out, StageRun
from .tasks import MapSpec, remote


class Exchange:
    """One exchange's map-side output as the driver sees it: each partition's pieces, with sizes."""

    def __init__(self, schema: pa.Schema, partitions: int):
        self.schema = schema
        self.partitions = partitions
        self.pieces: list[list[tuple]] = [[] for _ in range(partitions)]  # (ref, rows, bytes)
        self.rows = [0] * partitions
        self.bytes = [0] * partitions
        self.stored = [0] * partitions  # bytes on disk per partition, once persisted
        self.durable = False  # a persisted exchange counts shuffle bytes as its files' bytes
        self.samples: list[pa.Table] = []

    def add(self, out: Out) -> None:
        for partition, (ref, rows, size) in enumerate(zip(out.refs, out.report.rows, out.report.bytes)):
            if rows:
                self.pieces[partition].append((ref, rows, size))
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
        return [ref for p in partitions for ref, _, _ in self.pieces[p]]

    def release(self, partition: int) -> None:
        """Drop the driver's refs to a partition's pieces, so Ray frees them once their readers finish."""
        self.pieces[partition] = []


@dataclass
class ReduceItem:
    partitions: tuple[int, ...]
    refs: list | None = None  # prebuilt arguments, for the slices of a split partition
    counts: list | None = None
    cut: tuple | None = None  # (input, first row, rows) of a slice
    releases: tuple[int, ...] = field(default=())  # partitions this item is the last user of
    key: str = ""


class ShuffleRun(ExchangeStage):
    def __init__(self, stage_run: StageRun):
        self.owner = stage_run
        self.run = stage_run.run
        self.stage = stage_run.stage
        self.config = stage_run.run.config
        self.stats = stage_run.context.stats
        self._chunk_rows = 1

    def outputs(self) -> Iterator[Out]:
        return self.exchange_outputs()

    @property
    def reduce_task_bytes(self) -> int:
        return self.run.reduce_bytes

    @property
    def parallelism(self) -> int:
        return self.run.parallelism

    # ------------------------------------------------------------ map side

    def _map_side(self, read: ShuffleRead, partitions: int, partitioner: Partitioner | None = None,
                  samples: bool = False) -> Exchange:
        """Run the upstream into a new exchange. A resumable run keeps the exchange in its run store as it
        fills (persist.py) and, resumed, restores what an earlier attempt finished."""
        store = self.owner.context.store
        if store is None:
            return self._fill(read, partitions, partitioner, samples)
        directory = store.exchange_dir(exchange_key(
            PhysicalPlan(read.upstream).explain(), read.partitioner, read.prepare, partitioner, partitions))
        checkpoint = persist.DurableExchange(directory, read.schema, partitions)
        restored = checkpoint.restore_complete(self.run.ray, samples)
        if restored is not None:
            self.stats.emit("checkpoint", stage=self.stage.id, what="exchange restored",
                            detail=f"{sum(restored.rows):,} rows from stage {read.upstream.id}, {directory}")
            self._note(f"restored the exchange from stage {read.upstream.id} ({sum(restored.rows):,} rows) from an "
                       f"earlier attempt at this run")
            return restored
        exchange = self._fill(read, partitions, partitioner, samples, checkpoint)
        checkpoint.finish(exchange)
        self._exchange_saved(sum(exchange.rows), checkpoint.written, directory)
        return exchange

    def _fill(self, read: ShuffleRead, partitions: int, partitioner: Partitioner | None, samples: bool,
              checkpoint: persist.DurableExchange | None = None) -> Exchange:
        keys = tuple(read.partitioner.spec.by) if samples else None  # type: ignore[attr-defined]
        finish = MapSpec(self.stage.id, partitions, partitioner or read.partitioner, read.prepare, keys,
                         checkpoint.location if checkpoint else None, read.schema)
        exchange = Exchange(read.schema, partitions)
        if checkpoint is not None:
            checkpoint.restore_into(self.run.ray, exchange)
        for out in self.owner.upstream(read.upstream, finish, checkpoint):
            exchange.add(out)
            if checkpoint is not None:
                checkpoint.record(out.key, out.report.saved, exchange)
        if checkpoint is None:
            self.stats.add_shuffle(written=exchange.total_bytes)
        return exchange

    def _repartition(self, source: Exchange, partitioner: Partitioner, partitions: int) -> Exchange:
        target = Exchange(source.schema, partitions)
        chain = Chain(self.run, self.owner.spec(operators=(), finish=MapSpec(self.stage.id, partitions, partitioner)))
        pieces = [piece for p in range(source.partitions) for piece in source.pieces[p]]
        groups = adaptive.consecutive_groups(pieces, lambda piece: piece[2], min(self.reduce_task_bytes,
                                                                                  adaptive.REPARTITION_BLOCK_BYTES))
        for out in self.owner.parallel(groups, lambda group, block: chain.submit(
                "blocks", [None] * len(group), [piece[0] for piece in group], block, {})):
            target.add(out)
        self.stats.add_shuffle(read=source.read_bytes(range(source.partitions)), written=target.total_bytes)
        for partition in range(source.partitions):
            source.release(partition)
        return target

    # ------------------------------------------------------------ joins

    def _broadcast(self, collected: Exchange, probe_read: ShuffleRead) -> Iterator[Out]:
        """The build side fetched once and put once; each block of the other side is joined where it is."""
        tables = [self.run.fetch(ref) for ref in collected.refs([0])]
        build = pa.concat_tables(tables, promote_options="permissive") if tables else collected.schema.empty_table()
        self.stats.add_shuffle(read=collected.read_bytes([0]) if collected.durable else build.nbytes)
        collected.release(0)
        build_ref = self.run.ray.put(build)
        del tables, build
        build_is_left = self.stage.join.build == 0
        chain = Chain(self.run, self.owner.spec(reducer=self.stage.reducer,
                                                input_schemas=tuple(r.schema for r in self.stage.shuffle)))

        def submit(out: Out, block: str):
            args = [build_ref, out.refs[0]] if build_is_left else [out.refs[0], build_ref]
            return chain.submit("reduce", ([1, 1], None), args, block, {})

        yield from self.owner.parallel(self.owner.upstream(probe_read.upstream), submit)

    # ------------------------------------------------------------ sort

    def _sort(self) -> Iterator[Out]:
        read = self.stage.shuffle[0]
        staged = self._map_side(read, 1, SinglePartitioner(), samples=True)
        partitions = adaptive.sort_partitions(staged.total_bytes, self.run.reduce_bytes, self.run.parallelism)
        sample = pa.concat_tables(staged.samples, promote_options="permissive") if staged.samples else None
        partitioner = read.partitioner.with_boundaries(sample, partitions) if sample is not None else \
            RangePartitioner(read.partitioner.spec)  # type: ignore[attr-defined]
        count = partitioner.boundaries.num_rows + 1 if partitioner.boundaries is not None else 1
        ranged = staged if count == 1 else self._repartition(staged, partitioner, count)
        items = [ReduceItem((p,), releases=(p,)) for p in range(ranged.partitions) if ranged.rows[p]]
        yield from self._reduce([ranged], items)

    # ------------------------------------------------------------ reduce side

    def _plan_items(self, exchanges: list[Exchange], probe_index: int | None = None,
                    exclude: set[int] = frozenset()) -> list[ReduceItem]:
        plan, _ = adaptive.plan_exchange_reduce(self.stage, self.stats, exchanges, self.run.reduce_bytes, self.config,
                                                probe_index, exclude)
        for note in plan.notes:
            self._note(note)
        self._chunk_rows = plan.chunk_rows
        items = [ReduceItem(group, releases=group) for group in plan.groups]
        for partition in plan.skewed:
            items += self._split(exchanges, probe_index, partition)
        return items

    def _split(self, exchanges: list[Exchange], probe_index: int, partition: int) -> list[ReduceItem]:
        """Slices of a skewed partition's streamed side, each with the whole matching other side."""
        probe, other = exchanges[probe_index], exchanges[1 - probe_index]
        node = self.stage.reducer.node
        keys = list(node.left_on if probe_index == 0 else node.right_on)
        probe_refs = [ref for ref, _, _ in probe.pieces[partition]]
        found = self.run.fetch(remote("hot_keys_task").remote(self.stage.id, keys, *probe_refs))
        with self.stats._lock:
            self.stats.skewed_keys.extend(found)
        other_refs = other.refs([partition])
        self.stats.add_shuffle(read=probe.read_bytes([partition]) + other.read_bytes([partition]))
        cuts = adaptive.slices([rows for _, rows, _ in probe.pieces[partition]], self._chunk_rows)
        self._note(f"split skewed partition {partition} ({probe.rows[partition]:,} rows) into {len(cuts)} tasks")
        items = []
        for index, cut in enumerate(cuts):
            used = [probe_refs[piece] for piece, _, _ in cut]
            inputs = [used, other_refs] if probe_index == 0 else [other_refs, used]
            last = index == len(cuts) - 1
            items.append(ReduceItem((partition,), [r for refs in inputs for r in refs], [len(r) for r in inputs],
                                    (probe_index, cut[0][1], sum(rows for _, _, rows in cut)),
                                    (partition,) if last else ()))
        return items

    def _reduce(self, exchanges: list[Exchange], items: list[ReduceItem]) -> Iterator[Out]:
        chain = Chain(self.run, self.owner.spec(reducer=self.stage.reducer,
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
            pending = chain.submit("reduce", (counts, item.cut), args, block, {"partitions": list(item.partitions)})
            for partition in item.releases:
                for exchange in exchanges:
                    exchange.release(partition)
            return pending

        yield from self.owner.parallel(items, submit, lambda i: i.key)

    # ------------------------------------------------------------ holistic aggregates on skewed keys

    def _holistic_skew(self, exchange: Exchange) -> set[int]:
        """Skewed partitions of a raw-row aggregation that can be aggregated in two levels."""
        found, note = adaptive.holistic_skew(self.stage.reducer, exchange.schema, exchange.rows, exchange.bytes,
                                             self.config, bool(self.stage.fixed_partitions))
        if note:
            self._note(note)
        return found

    def _split_aggregate(self, exchange: Exchange, partition: int) -> Out:
        """A skewed partition, sliced by value and aggregated in parallel tasks (see holistic.py)."""
        ray, stage = self.run.ray, self.stage
        plan = stage.reducer.plan
        slices = holistic_split.slice_count(exchange.rows[partition], self._chunk_rows, self.run.parallelism)
        spec = ray.put(self.owner.spec(reducer=stage.reducer, input_schemas=(exchange.schema,)))
        refs = remote("split_assign").options(num_returns=slices + 3).remote(spec, slices, *exchange.refs([partition]))
        exchange.release(partition)
        frames, split, schema = refs[:slices], refs[slices], refs[slices + 1]
        block = f"s{stage.id}-split{partition}"
        report = self.run.fetch(refs[slices + 2])
        self.run.apply(stage, report, block, {"partitions": [partition]})
        frames = frames[:len(report.slice_rows)]
        ranked = any(a.fn in holistic_split.RANKED for a in plan.outputs)
        self._note(f"split skewed partition {partition} ({sum(report.slice_rows):,} rows) into {len(frames)} slices "
                   f"by {'value range' if ranked else 'value hash'}, aggregated in two levels")
        for rows in report.slice_rows:
            self.stats.add_reduce_task(stage.id, rows)
        partials = self._level("split_partials", block, [(stage.id, split, f) for f in frames])
        picked = []
        if ranked:
            wanted = remote("split_wanted").options(num_returns=len(frames)).remote(split, *partials)
            wanted = wanted if isinstance(wanted, list) else [wanted]
            picked = self._level("split_values", block, [(stage.id, split, f, w) for f, w in zip(frames, wanted)])
        pending = Chain(self.run, self.owner.spec()).submit("merge", (len(frames), ranked),
                                                            [split, schema, *partials, *picked], block, {})
        return self.owner.settle(pending)

    def _level(self, name: str, block: str, calls: list[tuple]) -> list:
        """One parallel level of a split: a task per slice; their reports folded in; their outputs' refs."""
        outputs, reports = [], []
        for args in calls:
            result, report = remote(name).options(num_returns=2).remote(*args)
            outputs.append(result)
            reports.append(report)
        for number, ref in enumerate(reports):
            self.run.apply(self.stage, self.run.fetch(ref), f"{block}-{name}{number}", {})
        return outputs

"""Physical planning: turn an optimized logical plan into stages of fused operators.

A stage reads either a source (split into read tasks) or the ordered output streams of
upstream stages, optionally passes that stream through one stream operator (a global limit,
or re-batching to a fixed size), then runs a chain of per-block operators in parallel. Narrow
operators fuse into the current stage; a node that needs the ordered stream starts a new one.
Logical nodes map to planning functions through the `PLANNERS` registry, not isinstance
ladders: to add an operator, register a function for its node type here.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa

from ..errors import PlanError
from ..expr import Column
from ..io.source import ScanRequest
from ..types import normalize_schema
from ..joins import preserved_sides
from ..observe.stats import format_bytes
from .estimates import estimated_bytes
from .fusion import FusedQuery, find_fusion
from .exchange import (
    BlockDistinct, BlockTopK, ConcatReducer, DistinctReducer, FinalAggregate, HashPartitioner, JoinReducer,
    PartialAggregate, Partitioner, RangePartitioner, Reducer, RoundRobinPartitioner, SinglePartitioner, SortReducer,
    WindowReducer,
)
from .logical import (
    Aggregate, Distinct, Filter, Join, Limit, LogicalNode, MapBatches, Project, Repartition, Scan, Sort, TopK, Union,
    Window, Write,
)
from .operators import GlobalLimit, LocalLimit, MapBatchesStep, Operator, PolarsStep, Rebatch, StreamOp, WriteStep


@dataclass(frozen=True, eq=False)
class ShuffleRead:
    """A stage input that arrives through an exchange: the upstream's blocks, partitioned."""

    upstream: Stage
    partitioner: Partitioner
    schema: pa.Schema  # of the blocks entering the exchange (after `prepare`)
    prepare: Operator | None = None
    estimated_bytes: int | None = None  # of the upstream's output, to size the partition count


@dataclass(frozen=True)
class JoinPlan:
    """Which side a join builds from, and whether it may or must broadcast it."""

    build: int  # index into the stage's shuffle inputs: 0 = left, 1 = right
    strategy: str  # "broadcast" or "shuffle", as planned
    reason: str
    can_broadcast: bool
    build_is_preserved: bool  # unmatched build-side rows appear in the output (full join)


@dataclass(frozen=True, eq=False)
class Stage:
    id: int
    scan: Scan | None = None
    inputs: tuple[Stage, ...] = ()
    stream_op: StreamOp | None = None
    operators: tuple[Operator, ...] = ()
    notes: tuple[str, ...] = ()
    shuffle: tuple[ShuffleRead, ...] = ()
    reducer: Reducer | None = None
    join: JoinPlan | None = None
    fixed_partitions: int | None = None  # repartition(n): exactly n output partitions, no coalescing
    reduce_when_empty: bool = False  # a global aggregate yields one row even over no input
    fused: FusedQuery | None = None  # one in-memory Polars query over the collected inputs (plan/fusion.py)

    @property
    def operator_labels(self) -> tuple[str, ...]:
        """The operators' names as stats and dead letters key them: a stage that runs two of a kind
        numbers the later ones ("MapBatches", "MapBatches 2"), so each keeps its own figures."""
        seen: dict[str, int] = {}
        labels = []
        for op in self.operators:
            seen[op.name] = seen.get(op.name, 0) + 1
            labels.append(op.name if seen[op.name] == 1 else f"{op.name} {seen[op.name]}")
        return tuple(labels)

    @property
    def name(self) -> str:
        parts = []
        if self.scan is not None:
            parts.append("Scan")
        if self.fused is not None:
            parts.append("Fused")
        if self.reducer is not None:
            parts.append(self.reducer.name)
        if self.inputs and self.scan is None and self.fused is None:
            parts.append("Union" if len(self.inputs) > 1 else "Stream")
        if self.stream_op is not None:
            parts.append(type(self.stream_op).__name__)
        parts += [op.name for op in self.operators]
        return f"stage {self.id}: " + " -> ".join(parts)

    @property
    def scan_request(self) -> ScanRequest:
        assert self.scan is not None
        return ScanRequest(self.scan.columns, self.scan.predicates, self.scan.limit, self.scan.source.schema)

    @property
    def read_schema(self) -> pa.Schema:
        """The normalized schema of blocks as the source yields them: scan columns plus residual-filter columns."""
        assert self.scan is not None
        source_schema = self.scan.source.schema
        names = self.scan_request.read_columns(source_schema)
        return normalize_schema(pa.schema([source_schema.field(n) for n in names]))

    def with_operator(self, operator: Operator) -> Stage:
        ops = self.operators
        if isinstance(operator, PolarsStep) and ops and isinstance(ops[-1], PolarsStep):
            return dataclasses.replace(self, operators=ops[:-1] + (PolarsStep(ops[-1].steps + operator.steps),))
        return dataclasses.replace(self, operators=ops + (operator,))


@dataclass(frozen=True, eq=False)
class PhysicalPlan:
    root: Stage
    sink: object | None = None
    notes: tuple[str, ...] = field(default=())

    def stages(self) -> list[Stage]:
        """Every stage, upstream before downstream."""
        seen: list[Stage] = []

        def visit(stage: Stage):
            for s in stage.inputs:
                visit(s)
            for read in stage.shuffle:
                visit(read.upstream)
            seen.append(stage)

        visit(self.root)
        return seen

    def explain(self, annotate: Callable[[Stage], list[str]] | None = None) -> str:
        """One block of lines per stage; `annotate` adds lines to each (measured figures, for analyze)."""
        lines = []
        for stage in self.stages():
            lines.append(stage.name)
            if stage.scan is not None:
                lines.append(f"    read: {stage.scan.label()}")
                request = stage.scan_request
                if request.arrow_filter is not None:
                    lines.append(f"    pushed to reader: {request.arrow_filter}")
                if request.residual is not None:
                    lines.append(f"    applied after read: {request.residual!r}")
            if stage.inputs:
                lines.append(f"    input: {', '.join(f'stage {s.id}' for s in stage.inputs)}")
            if stage.fused is not None:
                lines += [f"    {line}" for line in stage.fused.describe()]
            if stage.join is not None:
                build, stream = stage.shuffle[stage.join.build], stage.shuffle[1 - stage.join.build]
                sides = ("left", "right") if stage.join.build == 0 else ("right", "left")
                lines.append(f"    build side: stage {build.upstream.id} ({sides[0]}), collected first")
                lines.append(f"    streamed side: stage {stream.upstream.id} ({sides[1]})")
                lines.append(f"    join strategy: {stage.join.strategy} ({stage.join.reason})")
            else:
                for read in stage.shuffle:
                    prepare = f" after {read.prepare.describe()}" if read.prepare is not None else ""
                    lines.append(f"    exchange: stage {read.upstream.id} -> {read.partitioner.describe()}{prepare}")
            if stage.reducer is not None:
                lines.append(f"    reduce: {stage.reducer.describe()}")
            if stage.stream_op is not None:
                lines.append(f"    stream: {stage.stream_op.describe()}")
            lines += [f"    op: {op.describe()}" for op in stage.operators]
            lines += [f"    note: {note}" for note in stage.notes]
            if annotate is not None:
                lines += [f"    {line}" for line in annotate(stage)]
        return "\n".join(lines)


class _Builder:
    def __init__(self, config, fuse: bool = True, first_id: int = 0):
        self._ids = itertools.count(first_id)
        self.config = config
        self.fuse_threshold = config.fuse_threshold if fuse else 0

    def new_stage(self, **kwargs) -> Stage:
        return Stage(id=next(self._ids), **kwargs)

    def plan(self, node: LogicalNode) -> Stage:
        fused = find_fusion(node, self.fuse_threshold)
        if fused is not None:
            inputs = tuple(self.plan(leaf) for leaf in fused.inputs)
            return self.new_stage(inputs=inputs, fused=fused)
        planner = PLANNERS.get(type(node))
        if planner is None:
            raise PlanError(f"The local planner has no physical operator for {type(node).__name__}.")
        return planner(node, self)


PLANNERS: dict[type, Callable[[LogicalNode, _Builder], Stage]] = {}


def planner(node_type: type):
    def register(fn):
        PLANNERS[node_type] = fn
        return fn
    return register


@planner(Scan)
def _plan_scan(node: Scan, builder: _Builder) -> Stage:
    stage = builder.new_stage(scan=node)
    request = stage.scan_request
    if request.residual is not None:
        stage = stage.with_operator(PolarsStep((("filter", request.residual),)))
        if node.limit is not None:
            stage = stage.with_operator(LocalLimit(node.limit))
    if node.columns is not None and set(request.read_columns(node.source.schema)) != set(node.columns):
        stage = stage.with_operator(PolarsStep((("select", tuple(Column(c) for c in node.columns)),)))
    return stage


@planner(Filter)
def _plan_filter(node: Filter, builder: _Builder) -> Stage:
    return builder.plan(node.input).with_operator(PolarsStep((("filter", node.predicate),)))


@planner(Project)
def _plan_project(node: Project, builder: _Builder) -> Stage:
    return builder.plan(node.input).with_operator(PolarsStep((("select", node.exprs),)))


@planner(MapBatches)
def _plan_map_batches(node: MapBatches, builder: _Builder) -> Stage:
    upstream = builder.plan(node.input)
    if node.batch_size:
        return builder.new_stage(inputs=(upstream,), stream_op=Rebatch(node.batch_size),
                                 operators=(MapBatchesStep(node),),
                                 notes=(f"new stage: batch_size={node.batch_size} regroups the ordered stream",))
    return upstream.with_operator(MapBatchesStep(node, splittable=upstream.scan is not None))


@planner(Limit)
def _plan_limit(node: Limit, builder: _Builder) -> Stage:
    upstream = builder.plan(node.input)
    if not (upstream.operators and isinstance(upstream.operators[-1], LocalLimit)) and not (
            upstream.scan is not None and not upstream.operators and upstream.scan.limit == node.n):
        upstream = upstream.with_operator(LocalLimit(node.n))
    return builder.new_stage(inputs=(upstream,), stream_op=GlobalLimit(node.n))


@planner(Union)
def _plan_union(node: Union, builder: _Builder) -> Stage:
    return builder.new_stage(inputs=tuple(builder.plan(child) for child in node.inputs))


@planner(Write)
def _plan_write(node: Write, builder: _Builder) -> Stage:
    return builder.plan(node.input).with_operator(WriteStep(node.sink))


def _shuffle_stage(builder: _Builder, node: LogicalNode, upstream: Stage, partitioner: Partitioner,
                   schema: pa.Schema, reducer: Reducer, prepare: Operator | None = None, **extra) -> Stage:
    read = ShuffleRead(upstream, partitioner, schema, prepare, estimated_bytes(node.children[0]))
    return builder.new_stage(shuffle=(read,), reducer=reducer, **extra)


@planner(Aggregate)
def _plan_aggregate(node: Aggregate, builder: _Builder) -> Stage:
    agg = node.plan
    upstream = builder.plan(node.input)
    prepare = PartialAggregate(agg) if agg.two_phase else None
    entering = node.input.schema if prepare is None else prepare.apply(node.input.schema.empty_table()).schema
    partitioner = HashPartitioner(node.keys) if node.keys else SinglePartitioner()
    return _shuffle_stage(builder, node, upstream, partitioner, entering, FinalAggregate(agg), prepare,
                          reduce_when_empty=not node.keys)


@planner(Distinct)
def _plan_distinct(node: Distinct, builder: _Builder) -> Stage:
    subset = node.subset or tuple(node.schema.names)
    return _shuffle_stage(builder, node, builder.plan(node.input), HashPartitioner(subset), node.schema,
                          DistinctReducer(node.subset, node.keep), BlockDistinct(node.subset, node.keep))


@planner(Sort)
def _plan_sort(node: Sort, builder: _Builder) -> Stage:
    return _shuffle_stage(builder, node, builder.plan(node.input), RangePartitioner(node.spec), node.schema,
                          SortReducer(node.spec))


@planner(TopK)
def _plan_top_k(node: TopK, builder: _Builder) -> Stage:
    return _shuffle_stage(builder, node, builder.plan(node.input), SinglePartitioner(), node.schema,
                          SortReducer(node.spec, node.n), BlockTopK(node.spec, node.n))


@planner(Repartition)
def _plan_repartition(node: Repartition, builder: _Builder) -> Stage:
    partitioner = HashPartitioner(node.by) if node.by else RoundRobinPartitioner()
    return _shuffle_stage(builder, node, builder.plan(node.input), partitioner, node.schema, ConcatReducer(),
                          fixed_partitions=node.n)


@planner(Window)
def _plan_window(node: Window, builder: _Builder) -> Stage:
    """Windows stacked on the same partition columns share one exchange and run in one reduce task."""
    keys = node.spec.partition_by
    steps = [(node.spec, node.functions)]
    bottom = node
    while isinstance(bottom.input, Window) and bottom.input.spec.partition_by == keys:
        bottom = bottom.input
        steps.insert(0, (bottom.spec, bottom.functions))
    partitioner = HashPartitioner(keys) if keys else SinglePartitioner()
    return _shuffle_stage(builder, bottom, builder.plan(bottom.input), partitioner, bottom.input.schema,
                          WindowReducer(tuple(steps)))


@planner(Join)
def _plan_join(node: Join, builder: _Builder) -> Stage:
    left, right = builder.plan(node.left), builder.plan(node.right)
    if node.how == "cross":
        partitioners: tuple[Partitioner, Partitioner] = (SinglePartitioner(), SinglePartitioner())
    else:
        partitioners = (HashPartitioner(node.left_on), HashPartitioner(node.right_on))
    reads = (ShuffleRead(left, partitioners[0], node.left.schema, None, estimated_bytes(node.left)),
             ShuffleRead(right, partitioners[1], node.right.schema, None, estimated_bytes(node.right)))
    return builder.new_stage(shuffle=reads, reducer=JoinReducer(node), join=choose_join_strategy(node, builder.config))


def choose_join_strategy(node: Join, config) -> JoinPlan:
    """Pick the build side and the planned strategy, with the reason explain() prints."""
    left_preserved, right_preserved = preserved_sides(node.how)
    sizes = (estimated_bytes(node.left), estimated_bytes(node.right))
    if right_preserved and not left_preserved:
        build = 0
    elif left_preserved or node.how in ("semi", "anti"):
        build = 1
    else:
        known = [s if s is not None else float("inf") for s in sizes]
        build = 0 if known[0] < known[1] else 1
    side = "left" if build == 0 else "right"
    threshold = config.broadcast_threshold
    estimate = sizes[build]
    can_broadcast = not (left_preserved and right_preserved)
    described = "unknown size" if estimate is None else f"est. {format_bytes(estimate)}"
    if not can_broadcast:
        return JoinPlan(build, "shuffle", f"a full join keeps unmatched rows of both sides; {side} side {described}",
                        False, True)
    if node.strategy == "broadcast" or node.how == "cross":
        why = "cross join" if node.how == "cross" else "strategy='broadcast'"
        return JoinPlan(build, "broadcast", f"{why}: {side} side {described}", True, False)
    if node.strategy == "shuffle":
        return JoinPlan(build, "shuffle", f"strategy='shuffle': {side} side {described}", False, False)
    if estimate is not None and estimate < threshold:
        return JoinPlan(build, "broadcast", f"{side} side {described} < {format_bytes(threshold)}", True, False)
    return JoinPlan(build, "shuffle", f"{side} side {described} >= {format_bytes(threshold)}; switches to broadcast "
                                      f"if it measures under the threshold", True, False)


def plan_physical(plan: LogicalNode, config=None) -> PhysicalPlan:
    from .. import config as config_module
    root = _Builder(config or config_module.current()).plan(plan)
    return PhysicalPlan(root=root, sink=plan.sink if isinstance(plan, Write) else None)


def plan_staged(plan: LogicalNode, config, first_id: int) -> Stage:
    """Stages for `plan` without in-memory fusion, numbered from `first_id` (a fused query's fallback)."""
    return _Builder(config, fuse=False, first_id=first_id).plan(plan)

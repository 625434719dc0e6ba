"""Physical planning: turn an optimized logical plan into stages of fused operators.

A stage reads a source (split into read tasks), the ordered output streams of upstream
stages (optionally through one stream operator: a global limit, or re-batching to a fixed
size), or an exchange, then runs a chain of per-block operators in parallel (stages.py has
the variants). Narrow operators fuse into the current stage; a node that needs the ordered
stream or an exchange starts a new one. Logical nodes map to planning functions through the
`PLANNERS` registry, not isinstance ladders: to add an operator, register a function for its
node type here (tests/unit/test_registries.py checks that every node has one).
"""

from __future__ import annotations

import itertools
from typing import Callable

import pyarrow as pa

from ..errors import PlanError
from ..kernels.joins import preserved_sides
from ..observe.stats import format_bytes
from ..plan.checks import Expect
from ..plan.estimates import estimated_bytes
from ..plan.logical import (
    Aggregate, Distinct, Filter, Join, Limit, LogicalNode, MapBatches, Project, Repartition, Scan, Sort, TopK, Union,
    Window, Write,
)
from .checks import CheckStep
from .exchange import (
    BlockDistinct, BlockTopK, ConcatReducer, DistinctReducer, FinalAggregate, HashPartitioner, JoinReducer,
    PartialAggregate, Partitioner, RangePartitioner, Reducer, RoundRobinPartitioner, SinglePartitioner, SortReducer,
    WindowReducer,
)
from .fusion import find_fusion
from .operators import GlobalLimit, LocalLimit, MapBatchesStep, Operator, PolarsStep, Rebatch, WriteStep
from .stages import (
    ExchangeStage, FusedStage, JoinPlan, JoinStage, PhysicalPlan, ScanStage, ShuffleRead, SortStage, Stage, StreamStage,
    scan_stage,
)


class _Builder:
    def __init__(self, config, fuse: bool = True, first_id: int = 0):
        self._ids = itertools.count(first_id)
        self.config = config
        self.fuse_threshold = config.fuse_threshold if fuse else 0
        self.check_names: set[str] = set()

    def next_id(self) -> int:
        return next(self._ids)

    def new_stage(self, kind: type[Stage], **kwargs) -> Stage:
        return kind(id=self.next_id(), **kwargs)

    def plan(self, node: LogicalNode) -> Stage:
        fused = find_fusion(node, self.fuse_threshold)
        if fused is not None:
            inputs = tuple(self.plan(leaf) for leaf in fused.inputs)
            return self.new_stage(FusedStage, inputs=inputs, fused=fused)
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
    return scan_stage(builder.next_id(), node)


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
        return builder.new_stage(StreamStage, inputs=(upstream,), stream_op=Rebatch(node.batch_size),
                                 operators=(MapBatchesStep(node),),
                                 notes=(f"new stage: batch_size={node.batch_size} regroups the ordered stream",))
    # blocks read or sliced from a fused query's result may be cut for the workers; an exchange's stay whole
    return upstream.with_operator(MapBatchesStep(node, splittable=isinstance(upstream, (ScanStage, FusedStage))))


@planner(Limit)
def _plan_limit(node: Limit, builder: _Builder) -> Stage:
    upstream = builder.plan(node.input)
    if not (upstream.operators and isinstance(upstream.operators[-1], LocalLimit)) and not (
            isinstance(upstream, ScanStage) and not upstream.operators and upstream.scan.limit == node.n):
        upstream = upstream.with_operator(LocalLimit(node.n))
    return builder.new_stage(StreamStage, inputs=(upstream,), stream_op=GlobalLimit(node.n))


@planner(Union)
def _plan_union(node: Union, builder: _Builder) -> Stage:
    return builder.new_stage(StreamStage, inputs=tuple(builder.plan(child) for child in node.inputs))


@planner(Expect)
def _plan_expect(node: Expect, builder: _Builder) -> Stage:
    names = builder.check_names
    if node.check.name in names:
        raise PlanError(f"Two data-quality checks are named {node.check.name!r}; give each expect() its own name.")
    names.add(node.check.name)
    return builder.plan(node.input).with_operator(CheckStep(node.check))


@planner(Write)
def _plan_write(node: Write, builder: _Builder) -> Stage:
    return builder.plan(node.input).with_operator(WriteStep(node.sink))


def _shuffle_stage(builder: _Builder, node: LogicalNode, upstream: Stage, partitioner: Partitioner,
                   schema: pa.Schema, reducer: Reducer, prepare: Operator | None = None,
                   kind: type[ExchangeStage] = ExchangeStage, **extra) -> Stage:
    read = ShuffleRead(upstream, partitioner, schema, prepare, estimated_bytes(node.children[0]))
    return builder.new_stage(kind, read=read, reducer=reducer, **extra)


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
                          SortReducer(node.spec), kind=SortStage)


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
    return builder.new_stage(JoinStage, left=ShuffleRead(left, partitioners[0], node.left.schema, None,
                                                         estimated_bytes(node.left)),
                             right=ShuffleRead(right, partitioners[1], node.right.schema, None,
                                               estimated_bytes(node.right)),
                             reducer=JoinReducer(node), join=choose_join_strategy(node, builder.config))


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

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
from ..io.source import ScanRequest
from ..types import normalize_schema
from .logical import Filter, Limit, LogicalNode, MapBatches, Project, Scan, Union, Write
from .operators import GlobalLimit, LocalLimit, MapBatchesStep, Operator, PolarsStep, Rebatch, StreamOp, WriteStep


@dataclass(frozen=True, eq=False)
class Stage:
    id: int
    scan: Scan | None = None
    inputs: tuple[Stage, ...] = ()
    stream_op: StreamOp | None = None
    operators: tuple[Operator, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        parts = []
        if self.scan is not None:
            parts.append("Scan")
        if self.inputs and self.scan is None:
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
            seen.append(stage)

        visit(self.root)
        return seen

    def explain(self) -> str:
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
            if stage.stream_op is not None:
                lines.append(f"    stream: {stage.stream_op.describe()}")
            lines += [f"    op: {op.describe()}" for op in stage.operators]
            lines += [f"    note: {note}" for note in stage.notes]
        return "\n".join(lines)


class _Builder:
    def __init__(self):
        self._ids = itertools.count()

    def new_stage(self, **kwargs) -> Stage:
        return Stage(id=next(self._ids), **kwargs)

    def plan(self, node: LogicalNode) -> Stage:
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
        stage = stage.with_operator(PolarsStep((("select", tuple(_col(c) for c in node.columns)),)))
    return stage


def _col(name: str):
    from ..expr import Column
    return Column(name)


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
    return upstream.with_operator(MapBatchesStep(node))


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


def plan_physical(plan: LogicalNode) -> PhysicalPlan:
    root = _Builder().plan(plan)
    return PhysicalPlan(root=root, sink=plan.sink if isinstance(plan, Write) else None)

"""The physical plan: stages, one typed variant per way a stage gets its input.

Why this module exists: a stage is a chain of per-block operators after one input, and the
input decides how it runs. `ScanStage` reads a source split into read tasks; `StreamStage`
takes the ordered output streams of upstream stages (a union, or one stream through a
global limit or a re-batch); `FusedStage` runs an in-memory Polars query over collected
inputs; `ExchangeStage`, `SortStage` and `JoinStage` read through exchanges (a hash or single
exchange, a range exchange, a join's two sides). The engine maps each variant to the code
that runs it (engine/stage_run.py), so no runner probes optional fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa

from ..expr.tree import Column
from ..expr.types import normalize_schema
from ..io.source import ScanRequest
from ..plan.logical import Scan
from .exchange import JoinReducer, Partitioner, Reducer
from .fusion import FusedQuery
from .operators import Operator, PolarsStep, StreamOp


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

    build: int  # 0 = the left side, 1 = the right side
    strategy: str  # "broadcast" or "shuffle", as planned
    reason: str
    can_broadcast: bool
    build_is_preserved: bool  # unmatched build-side rows appear in the output (full join)


@dataclass(frozen=True, eq=False, kw_only=True)
class Stage:
    id: int
    operators: tuple[Operator, ...] = ()
    notes: tuple[str, ...] = ()

    kind = "Stage"

    @property
    def upstreams(self) -> tuple[Stage, ...]:
        """The stages whose output this one reads, in order."""
        return ()

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

    def _name_parts(self) -> list[str]:
        return [self.kind]

    @property
    def name(self) -> str:
        return f"stage {self.id}: " + " -> ".join(self._name_parts() + [op.name for op in self.operators])

    def with_operator(self, operator: Operator) -> Stage:
        ops = self.operators
        if isinstance(operator, PolarsStep) and ops and isinstance(ops[-1], PolarsStep):
            return dataclasses.replace(self, operators=ops[:-1] + (PolarsStep(ops[-1].steps + operator.steps),))
        return dataclasses.replace(self, operators=ops + (operator,))

    def describe_input(self) -> list[str]:
        """explain()'s lines for where this stage's blocks come from."""
        return []


@dataclass(frozen=True, eq=False, kw_only=True)
class ScanStage(Stage):
    scan: Scan

    kind = "Scan"

    @property
    def scan_request(self) -> ScanRequest:
        return ScanRequest(self.scan.columns, self.scan.predicates, self.scan.limit, self.scan.source.schema)

    @property
    def read_schema(self) -> pa.Schema:
        """The normalized schema of blocks as the source yields them: scan columns plus residual-filter columns."""
        source_schema = self.scan.source.schema
        names = self.scan_request.read_columns(source_schema)
        return normalize_schema(pa.schema([source_schema.field(n) for n in names]))

    def describe_input(self) -> list[str]:
        lines = [f"read: {self.scan.label()}"]
        request = self.scan_request
        if request.arrow_filter is not None:
            lines.append(f"pushed to reader: {request.arrow_filter}")
        if request.residual is not None:
            lines.append(f"applied after read: {request.residual!r}")
        return lines


def scan_stage(stage_id: int, node: Scan) -> Stage:
    """A scan's stage, with the residual filter (and its limit) and the final column selection."""
    from .operators import LocalLimit
    stage: Stage = ScanStage(id=stage_id, scan=node)
    request = stage.scan_request  # type: ignore[attr-defined]
    if request.residual is not None:
        stage = stage.with_operator(PolarsStep((("filter", request.residual),)))
        if node.limit is not None:
            stage = stage.with_operator(LocalLimit(node.limit))
    if node.columns is not None and set(request.read_columns(node.source.schema)) != set(node.columns):
        stage = stage.with_operator(PolarsStep((("select", tuple(Column(c) for c in node.columns)),)))
    return stage


@dataclass(frozen=True, eq=False, kw_only=True)
class StreamStage(Stage):
    """The ordered streams of upstream stages, concatenated, optionally through a stream operator."""

    inputs: tuple[Stage, ...]
    stream_op: StreamOp | None = None

    @property
    def upstreams(self) -> tuple[Stage, ...]:
        return self.inputs

    def _name_parts(self) -> list[str]:
        parts = ["Union" if len(self.inputs) > 1 else "Stream"]
        return parts + ([type(self.stream_op).__name__] if self.stream_op is not None else [])

    def describe_input(self) -> list[str]:
        lines = [f"input: {', '.join(f'stage {s.id}' for s in self.inputs)}"]
        return lines + ([f"stream: {self.stream_op.describe()}"] if self.stream_op is not None else [])


@dataclass(frozen=True, eq=False, kw_only=True)
class FusedStage(Stage):
    """One in-memory Polars query over the collected outputs of its input stages (physical/fusion.py)."""

    inputs: tuple[Stage, ...]
    fused: FusedQuery

    kind = "Fused"

    @property
    def upstreams(self) -> tuple[Stage, ...]:
        return self.inputs

    def describe_input(self) -> list[str]:
        return [f"input: {', '.join(f'stage {s.id}' for s in self.inputs)}"] + list(self.fused.describe())


@dataclass(frozen=True, eq=False, kw_only=True)
class ExchangeStage(Stage):
    """A hash (or single-partition) exchange, then one reducer per partition group."""

    read: ShuffleRead
    reducer: Reducer
    fixed_partitions: int | None = None  # repartition(n): exactly n output partitions, no coalescing
    reduce_when_empty: bool = False  # a global aggregate yields one row even over no input

    @property
    def upstreams(self) -> tuple[Stage, ...]:
        return (self.read.upstream,)

    @property
    def reads(self) -> tuple[ShuffleRead, ...]:
        return (self.read,)

    def _name_parts(self) -> list[str]:
        return [self.reducer.name]

    def describe_input(self) -> list[str]:
        prepare = f" after {self.read.prepare.describe()}" if self.read.prepare is not None else ""
        return [f"exchange: stage {self.read.upstream.id} -> {self.read.partitioner.describe()}{prepare}",
                f"reduce: {self.reducer.describe()}"]


@dataclass(frozen=True, eq=False, kw_only=True)
class SortStage(ExchangeStage):
    """A range exchange: keys sampled on the map side, ranges drawn, each range sorted in order."""


@dataclass(frozen=True, eq=False, kw_only=True)
class JoinStage(Stage):
    """A join: the build side collected first, then broadcast or both sides hash-exchanged."""

    left: ShuffleRead
    right: ShuffleRead
    reducer: JoinReducer
    join: JoinPlan

    fixed_partitions = None
    reduce_when_empty = False

    @property
    def upstreams(self) -> tuple[Stage, ...]:
        return (self.left.upstream, self.right.upstream)

    @property
    def reads(self) -> tuple[ShuffleRead, ...]:
        return (self.left, self.right)

    def _name_parts(self) -> list[str]:
        return [self.reducer.name]

    def describe_input(self) -> list[str]:
        build, stream = self.reads[self.join.build], self.reads[1 - self.join.build]
        sides = ("left", "right") if self.join.build == 0 else ("right", "left")
        return [f"build side: stage {build.upstream.id} ({sides[0]}), collected first",
                f"streamed side: stage {stream.upstream.id} ({sides[1]})",
                f"join strategy: {self.join.strategy} ({self.join.reason})",
                f"reduce: {self.reducer.describe()}"]


@dataclass(frozen=True, eq=False)
class PhysicalPlan:
    root: Stage
    sink: object | None = None
    notes: tuple[str, ...] = field(default=())

    def stages(self) -> list[Stage]:
        """Every stage, upstream before downstream."""
        seen: list[Stage] = []

        def visit(stage: Stage):
            for upstream in stage.upstreams:
                visit(upstream)
            seen.append(stage)

        visit(self.root)
        return seen

    def explain(self, annotate: Callable[[Stage], list[str]] | None = None) -> str:
        """One block of lines per stage; `annotate` adds lines to each (measured figures, for analyze)."""
        lines = []
        for stage in self.stages():
            lines.append(stage.name)
            lines += [f"    {line}" for line in stage.describe_input()]
            lines += [f"    op: {op.describe()}" for op in stage.operators]
            lines += [f"    note: {note}" for note in stage.notes]
            if annotate is not None:
                lines += [f"    {line}" for line in annotate(stage)]
        return "\n".join(lines)

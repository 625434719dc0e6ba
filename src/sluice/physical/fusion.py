"""In-memory fusion: a relational subtree whose inputs fit easily in memory runs as one Polars query.

Exchanges exist so that data larger than memory can be joined, grouped and sorted. When the
inputs of a subtree of joins, aggregations, sorts, distincts and windows are far below the
memory budget (their estimated size under `Config.fuse_threshold`), partitioning them buys
nothing and costs a lot: every block is hashed and split, every broadcast join builds its
hash table once per probe block, every stage waits for the one before. Then the local
planner instead plans one *fused* stage, whose subtree runs as a single Polars lazy query
(on Polars' streaming engine, which plans its own joins and uses every core). Scans of
local Parquet files, with the filters and projections over them, become part of the query
(`Source.polars_scan`): Polars prunes row groups and decodes lazily. Any other input (a UDF's
output, an in-memory table, CSV) runs as an ordinary stage and is collected first.

The subtree is lowered node by node through the `LOWERINGS` registry, with the same
Polars expressions the exchange reducers use (aggregates.py, joins.py, window.py), so a
fused query and its staged plan give the same answer (tests/integration/test_fusion.py
checks this against DuckDB and against the staged plan). A node type without a lowering
ends the subtree: it becomes an input, planned as usual. When the query fails (a bad row in
an expression), the runner reruns the subtree staged over the collected inputs, so that bad
rows are quarantined or reported exactly as without fusion (engine/fused.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import polars as pl
import pyarrow as pa

from ..expr.compile import to_polars
from ..expr.types import arrow_to_polars, polars_to_arrow
from ..io.source import ScanRequest
from ..kernels.joins import join_frames
from ..observe.stats import format_bytes
from ..plan.checks import Expect
from ..plan.estimates import estimated_bytes
from ..plan.logical import (
    Aggregate, Distinct, Filter, Join, Limit, LogicalNode, MapBatches, Project, Repartition, Scan, Sort, TopK, Union,
    Window, Write,
)

WIDE = (Aggregate, Join, Distinct, Sort, TopK, Window)  # what fusion saves an exchange for

LOWERINGS: dict[type, Callable[[LogicalNode, list[pl.LazyFrame]], pl.LazyFrame]] = {}


def lowering(node_type: type):
    def register(fn):
        LOWERINGS[node_type] = fn
        return fn
    return register


# The nodes that have no lowering on purpose, and why: each ends a fused subtree.
NOT_LOWERED: dict[type, str] = {
    Scan: "a leaf: Polars reads it inside the query (Source.polars_scan), or it is collected first",
    MapBatches: "it calls the user's Python function, in worker processes with quarantine, not inside Polars",
    Write: "it commits files through the sink's protocol, after the query",
    Repartition: "it asks for a physical layout of blocks, which only the staged plan gives",
    Expect: "a data-quality check counts and quarantines rows as they pass, which a Polars query cannot report",
}


@dataclass(frozen=True, eq=False)
class FusedQuery:
    """A logical subtree run as one Polars query over the collected outputs of its `inputs`
    and the files of its `scans` (sources Polars reads itself, Source.polars_scan)."""

    root: LogicalNode
    inputs: tuple[LogicalNode, ...]  # the subtree's leaves, in the order of the fused stage's input stages
    scans: tuple[tuple[Scan, pl.LazyFrame, int], ...]  # each with its Polars scan and the bytes it reads
    estimated_bytes: int
    threshold: int

    def run(self, tables: list[pa.Table]) -> tuple[pa.Table, int]:
        """The query's result, and the bytes its scans read from files."""
        frames = {id(node): arrow_to_polars(table).lazy() for node, table in zip(self.inputs, tables)}
        scanned = 0
        for scan, frame, size in self.scans:
            frames[id(scan)] = frame
            scanned += size

        def lower(node: LogicalNode) -> pl.LazyFrame:
            if id(node) in frames:
                return frames[id(node)]
            return LOWERINGS[type(node)](node, [lower(child) for child in node.children])

        # Polars' streaming engine runs these queries 1.5-3x faster than its in-memory one on
        # TPC-H (morsel-parallel joins and group-bys), in less memory; it falls back by itself
        # for operations it does not stream
        return polars_to_arrow(lower(self.root).collect(engine="streaming")), scanned

    def describe(self) -> list[str]:
        lines = [f"fused: one in-memory Polars query (inputs est. {format_bytes(self.estimated_bytes)} < "
                 f"{format_bytes(self.threshold)}); no exchanges"]
        inputs = {id(node): index for index, node in enumerate(self.inputs)}
        scans = {id(scan) for scan, _, _ in self.scans}

        def walk(node: LogicalNode, depth: int) -> None:
            indent = "    " * depth + "  "
            if id(node) in inputs:
                lines.append(f"{indent}input {inputs[id(node)]}: {node.label()}")
                return
            lines.append(f"{indent}{node.label()}" + (" (read by Polars)" if id(node) in scans else ""))
            for child in node.children:
                walk(child, depth + 1)

        walk(self.root, 0)
        return lines


def find_fusion(node: LogicalNode, threshold: int) -> FusedQuery | None:
    """The fused query rooted at `node`, if its subtree has a wide node and its inputs fit."""
    if threshold <= 0 or not _has_wide(node):
        return None
    inputs: dict[int, LogicalNode] = {}  # collected from their own stages
    read_by_polars: dict[int, LogicalNode] = {}  # narrow chains over scans that Polars reads itself
    native: dict[int, tuple | None] = {}  # each scan's Source.polars_scan, asked once

    def polars_scan(scan: Scan):
        if id(scan) not in native:
            native[id(scan)] = scan.source.polars_scan(
                ScanRequest(scan.columns, scan.predicates, scan.limit, scan.source.schema))
        return native[id(scan)]

    def chain_over_scans(current: LogicalNode) -> bool:
        """A narrow chain (filters, projections, limits, unions) over scans Polars reads itself."""
        if isinstance(current, Scan):
            return polars_scan(current) is not None
        return (type(current) in LOWERINGS and not isinstance(current, WIDE) and bool(current.children)
                and all(chain_over_scans(child) for child in current.children))

    def collect(current: LogicalNode) -> None:
        for child in current.children:
            if _has_wide(child):
                collect(child)
            elif chain_over_scans(child):
                read_by_polars.setdefault(id(child), child)
            else:
                inputs.setdefault(id(child), child)

    collect(node)
    scans = {id(scan): (scan, *polars_scan(scan)) for chain in read_by_polars.values() for scan in _scans_in(chain)}
    sizes = [estimated_bytes(leaf) for leaf in (*inputs.values(), *read_by_polars.values())]
    if any(size is None for size in sizes) or sum(sizes) >= threshold:  # type: ignore[arg-type]
        return None
    return FusedQuery(node, tuple(inputs.values()), tuple(scans.values()), sum(sizes), threshold)  # type: ignore


def _scans_in(node: LogicalNode) -> list[Scan]:
    return [node] if isinstance(node, Scan) else [scan for child in node.children for scan in _scans_in(child)]


def _lowerable(node: LogicalNode) -> bool:
    """A join given an explicit strategy= is run as asked, so it ends a fused subtree."""
    return type(node) in LOWERINGS and not isinstance(node, Scan) and not (
        isinstance(node, Join) and node.strategy != "auto")


def _has_wide(node: LogicalNode) -> bool:
    """Whether `node` is lowerable and has a wide node in its lowerable subtree."""
    if not _lowerable(node):
        return False
    return isinstance(node, WIDE) or any(_has_wide(child) for child in node.children)


def replace_inputs(query: FusedQuery, replacements: list[LogicalNode]) -> LogicalNode:
    """The fused subtree with each input swapped for its replacement (the staged fallback)."""
    swap = {id(node): new for node, new in zip(query.inputs, replacements)}

    def rebuild(node: LogicalNode) -> LogicalNode:
        if id(node) in swap:
            return swap[id(node)]
        return node.with_children(tuple(rebuild(child) for child in node.children))

    return rebuild(query.root)


# ---------------------------------------------------------------- lowerings, one per node type

@lowering(Filter)
def _filter(node: Filter, inputs):
    return inputs[0].filter(to_polars(node.predicate))


@lowering(Project)
def _project(node: Project, inputs):
    # with_columns, not select: a literal-only select would give one row, not one per input row
    return inputs[0].with_columns([to_polars(e) for e in node.exprs]).select([e.output_name() for e in node.exprs])


@lowering(Aggregate)
def _aggregate(node: Aggregate, inputs):
    exprs = node.plan.single()
    return inputs[0].group_by(list(node.keys)).agg(exprs) if node.keys else inputs[0].select(exprs)


@lowering(Join)
def _join(node: Join, inputs):
    left, right = inputs
    floats = any(pa.types.is_floating(side.schema.field(key).type)
                 for side, keys in ((node.left, node.left_on), (node.right, node.right_on)) for key in keys)
    return join_frames(left, right, node.left_on, node.right_on, node.how, node.suffix,
                       float_keys=floats).select(node.schema.names)


@lowering(Distinct)
def _distinct(node: Distinct, inputs):
    subset = list(node.subset) if node.subset else None
    return inputs[0].unique(subset=subset, keep=node.keep, maintain_order=node.keep != "any")


@lowering(Sort)
def _sort(node: Sort, inputs):
    if node.spec.packable(inputs[0].collect_schema()):
        # the packed key needs the columns' ranges: sort the whole input once it is known
        return inputs[0].map_batches(node.spec.apply, streamable=False)
    return node.spec.apply(inputs[0])


@lowering(TopK)
def _top_k(node: TopK, inputs):
    return node.spec.apply(inputs[0]).head(node.n)


@lowering(Limit)
def _limit(node: Limit, inputs):
    return inputs[0].head(node.n)


@lowering(Union)
def _union(node: Union, inputs):
    names = node.schema.names
    return pl.concat([frame.select(names) for frame in inputs], how="vertical_relaxed")


@lowering(Window)
def _window(node: Window, inputs):
    from ..kernels.window import apply_window
    return apply_window(inputs[0], node.spec, node.functions)

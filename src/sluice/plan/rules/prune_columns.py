"""Projection pushdown: read only the columns the plan uses.

Walking down from the root, each node passes on the columns its parent needs plus the ones it
uses itself. A scan keeps only those, so Parquet reads fewer column chunks; a projection drops
outputs nobody reads, and a window drops functions nobody reads. `map_batches` needs every
input column, since user code may read any.
A join keeps a left column that shares its name with a needed right column, because dropping
it would change the right column's output name (the suffix is only added on a clash).
"""

from __future__ import annotations

import dataclasses

from ...expr.tree import columns_of
from ...expr.types import narrowest_column
from ..checks import Expect
from ..logical import (
    Aggregate, Distinct, Filter, Join, Limit, LogicalNode, MapBatches, Project, Repartition, Scan, Sort, TopK, Union,
    Window, Write,
)


def _prune(node: LogicalNode, required: set[str] | None) -> LogicalNode:
    if isinstance(node, Scan):
        if required is None:
            return node
        names = [n for n in node.source.schema.names
                 if n in required and (node.columns is None or n in node.columns)]
        if not names:
            names = [narrowest_column(node.schema)]
        columns = tuple(names)
        return node if columns == node.columns else dataclasses.replace(node, columns=columns)
    if isinstance(node, Project):
        exprs = node.exprs
        if required is not None:
            exprs = tuple(e for e in node.exprs if e.output_name() in required) or node.exprs[:1]
        child = _prune(node.input, set().union(*(columns_of(e) for e in exprs)))
        if len(exprs) == len(node.exprs) and all(a is b for a, b in zip(exprs, node.exprs)) and child is node.input:
            return node
        return Project(child, exprs)
    if isinstance(node, Aggregate):
        needed = set(node.keys)
        for expr in node.aggs:
            needed |= columns_of(expr)
        return _rebuild(node, (_prune(node.input, needed),))
    if isinstance(node, Join):
        return _rebuild(node, _prune_join(node, required))
    if isinstance(node, Window):
        return _prune_window(node, required)
    uses = _extra_columns(node)
    if isinstance(node, (Filter, Limit, Union, Sort, TopK, Repartition, Distinct, Expect)):
        needed = None if required is None or uses is None else required | uses
        return _rebuild(node, tuple(_prune(c, needed) for c in node.children))
    if isinstance(node, (MapBatches, Write)):
        return _rebuild(node, tuple(_prune(c, None) for c in node.children))
    return _rebuild(node, tuple(_prune(c, None) for c in node.children))


def _extra_columns(node: LogicalNode) -> set[str] | None:
    """Columns a row-preserving node reads itself; None when it needs every column."""
    if isinstance(node, Filter):
        return columns_of(node.predicate)
    if isinstance(node, (Sort, TopK)):
        return set(node.spec.by)
    if isinstance(node, Repartition):
        return set(node.by or ())
    if isinstance(node, Distinct):
        return None if node.subset is None else set(node.subset)
    if isinstance(node, Expect):
        return node.check.used_columns()
    return set()


def _prune_window(node: Window, required: set[str] | None) -> LogicalNode:
    """Drop window columns nobody reads (and the window, if none is left); read what the rest use."""
    functions = node.functions
    if required is not None:
        functions = tuple(f for f in node.functions if f.output_name() in required)
        if not functions:
            return _prune(node.input, required)
    needed = None
    if required is not None:
        made = {f.output_name() for f in node.functions}
        needed = (required - made) | set(node.spec.partition_by) | set(node.spec.order_by)
        for function in functions:
            needed |= columns_of(function)
    child = _prune(node.input, needed)
    if child is node.input and len(functions) == len(node.functions):
        return node
    return Window(child, node.spec, functions)


def _prune_join(node: Join, required: set[str] | None) -> tuple[LogicalNode, LogicalNode]:
    left_schema, right_schema = node.left.schema, node.right.schema
    if required is None or left_schema is None or right_schema is None or node.how == "right":
        return _prune(node.left, None), _prune(node.right, None)
    right_needed = set(node.right_on)
    if node.how not in ("semi", "anti"):
        for name in right_schema.names:
            if name in required or f"{name}{node.suffix}" in required:
                right_needed.add(name)
    left_needed = set(node.left_on) | {n for n in left_schema.names if n in required or n in right_needed}
    return _prune(node.left, left_needed), _prune(node.right, right_needed)


def _rebuild(node: LogicalNode, children: tuple[LogicalNode, ...]) -> LogicalNode:
    if all(a is b for a, b in zip(children, node.children)):
        return node
    return node.with_children(children)


def prune_columns(plan: LogicalNode) -> LogicalNode:
    return _prune(plan, None)

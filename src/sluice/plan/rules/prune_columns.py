"""Projection pushdown: read only the columns the plan uses.

Walking down from the root, each node passes on the columns its parent needs plus the ones it
uses itself. A scan keeps only those, so Parquet reads fewer column chunks; a projection drops
outputs nobody reads. `map_batches` needs every input column, since user code may read any.
"""

from __future__ import annotations

import dataclasses

from ...expr import columns_of
from ..logical import Filter, Limit, LogicalNode, MapBatches, Project, Scan, Union, Write


def _narrowest(schema) -> str:
    def width(field):
        try:
            return field.type.bit_width
        except ValueError:
            return 1 << 20
    return min(schema, key=width).name


def _prune(node: LogicalNode, required: set[str] | None) -> LogicalNode:
    if isinstance(node, Scan):
        if required is None:
            return node
        names = [n for n in node.source.schema.names
                 if n in required and (node.columns is None or n in node.columns)]
        if not names:
            names = [_narrowest(node.schema)]
        columns = tuple(names)
        return node if columns == node.columns else dataclasses.replace(node, columns=columns)
    if isinstance(node, Filter):
        needed = None if required is None else required | columns_of(node.predicate)
        return _rebuild(node, (_prune(node.input, needed),))
    if isinstance(node, Project):
        exprs = node.exprs
        if required is not None:
            exprs = tuple(e for e in node.exprs if e.output_name() in required) or node.exprs[:1]
        needed = set().union(*(columns_of(e) for e in exprs))
        child = _prune(node.input, needed)
        if len(exprs) == len(node.exprs) and all(a is b for a, b in zip(exprs, node.exprs)) and child is node.input:
            return node
        return Project(child, exprs)
    if isinstance(node, (Limit, Union)):
        return _rebuild(node, tuple(_prune(c, required) for c in node.children))
    if isinstance(node, (MapBatches, Write)):
        return _rebuild(node, tuple(_prune(c, None) for c in node.children))
    return _rebuild(node, tuple(_prune(c, None) for c in node.children))


def _rebuild(node: LogicalNode, children: tuple[LogicalNode, ...]) -> LogicalNode:
    if all(a is b for a, b in zip(children, node.children)):
        return node
    return node.with_children(children)


def prune_columns(plan: LogicalNode) -> LogicalNode:
    return _prune(plan, None)

"""Predicate pushdown: move filters toward the scan, and into it.

A filter moves below a projection (its column references rewritten to the projection's
inputs), below `with_columns`, and into every input of a union. At a scan it becomes one of
the scan's predicates; the source then prunes partitions by path and row groups by their
statistics, and filters rows while decoding. A filter never moves below a limit (that would
change which rows are kept) or below `map_batches` (user code may depend on every row).
"""

from __future__ import annotations

import dataclasses

from ...expr import Column, Expr, columns_of, split_conjuncts, transform, unalias
from ..logical import Filter, LogicalNode, Project, Scan, Union, transform_down


def _substitute(predicate: Expr, mapping: dict[str, Expr]) -> Expr:
    return transform(predicate, lambda e: mapping[e.name] if isinstance(e, Column) and e.name in mapping else e)


def _push(node: LogicalNode) -> LogicalNode:
    if not isinstance(node, Filter):
        return node
    child = node.input
    if isinstance(child, Project):
        mapping = {e.output_name(): unalias(e) for e in child.exprs}
        if columns_of(node.predicate) <= set(mapping):
            return Project(Filter(child.input, _substitute(node.predicate, mapping)), child.exprs)
    if isinstance(child, Union):
        return Union(tuple(Filter(branch, node.predicate) for branch in child.inputs))
    if isinstance(child, Scan) and child.limit is None:
        return dataclasses.replace(child, predicates=child.predicates + tuple(split_conjuncts(node.predicate)))
    return node


def push_predicates_down(plan: LogicalNode) -> LogicalNode:
    return transform_down(plan, _push)

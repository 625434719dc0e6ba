"""Merge adjacent filters into one conjunction, so they run as one pass and push down together."""

from __future__ import annotations

from ..logical import Filter, LogicalNode, transform_up


def _merge(node: LogicalNode) -> LogicalNode:
    if isinstance(node, Filter) and isinstance(node.input, Filter):
        return Filter(node.input.input, node.input.predicate & node.predicate)
    return node


def merge_filters(plan: LogicalNode) -> LogicalNode:
    return transform_up(plan, _merge)

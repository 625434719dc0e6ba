"""Predicate pushdown: move filters toward the scan, and into it.

A filter moves below a projection (its column references rewritten to the projection's
inputs), below `with_columns`, into every input of a union, below a sort or a repartition,
below a distinct when it reads only the distinct columns, below an aggregate when it reads
only the grouping keys, below a window when it reads only the partition columns (it keeps or
drops whole partitions), and into the side of a join whose rows it judges (the left side of
an inner, left, semi or anti join; the right side of an inner or right join). At a scan it
becomes one of the scan's predicates; the source then prunes partitions by path and row
groups by their statistics, and filters rows while decoding. A filter never moves below a
limit (that would change which rows are kept) or below `map_batches` (user code may depend
on every row).
"""

from __future__ import annotations

import dataclasses

from ...expr.tree import Column, Expr, columns_of, conjoin, split_conjuncts, transform, unalias
from ..logical import (
    Aggregate, Distinct, Filter, Join, LogicalNode, Project, Repartition, Scan, Sort, Union, Window, transform_down,
)


def _substitute(predicate: Expr, mapping: dict[str, Expr]) -> Expr:
    return transform(predicate, lambda e: mapping[e.name] if isinstance(e, Column) and e.name in mapping else e)


def _split(node: Filter, can_push) -> tuple[list[Expr], list[Expr]]:
    pushed, kept = [], []
    for conjunct in split_conjuncts(node.predicate):
        (pushed if can_push(conjunct) else kept).append(conjunct)
    return pushed, kept


def _with_remaining(result: LogicalNode, kept: list[Expr]) -> LogicalNode:
    remaining = conjoin(kept)
    return result if remaining is None else Filter(result, remaining)


def _push_into_join(node: Filter, join: Join) -> LogicalNode:
    left_schema, right_schema = join.left.schema, join.right.schema
    if left_schema is None or right_schema is None or join.how == "right":
        return node
    left_names = set(left_schema.names)
    right_outputs = {} if join.how in ("semi", "anti") else {
        (name if name not in left_names else f"{name}{join.suffix}"): name
        for name in right_schema.names if name not in join.right_on}
    left_ok = join.how in ("inner", "left", "semi", "anti", "cross")
    right_ok = join.how in ("inner", "cross")
    to_left, to_right, kept = [], [], []
    for conjunct in split_conjuncts(node.predicate):
        used = columns_of(conjunct)
        if left_ok and used <= left_names and not used & set(right_outputs):
            to_left.append(conjunct)
        elif right_ok and used and used <= set(right_outputs):
            to_right.append(_substitute(conjunct, {o: Column(n) for o, n in right_outputs.items()}))
        else:
            kept.append(conjunct)
    if not to_left and not to_right:
        return node
    left = Filter(join.left, conjoin(to_left)) if to_left else join.left
    right = Filter(join.right, conjoin(to_right)) if to_right else join.right
    return _with_remaining(dataclasses.replace(join, left=left, right=right), kept)


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
    if isinstance(child, (Sort, Repartition)):
        return child.with_children((Filter(child.input, node.predicate),))
    if isinstance(child, Distinct) and (child.subset is None or columns_of(node.predicate) <= set(child.subset)):
        return child.with_children((Filter(child.input, node.predicate),))
    if isinstance(child, Aggregate) and child.keys:
        pushed, kept = _split(node, lambda c: columns_of(c) <= set(child.keys))
        if pushed:
            return _with_remaining(child.with_children((Filter(child.input, conjoin(pushed)),)), kept)
    if isinstance(child, Window) and child.spec.partition_by:
        pushed, kept = _split(node, lambda c: columns_of(c) <= set(child.spec.partition_by))
        if pushed:
            return _with_remaining(child.with_children((Filter(child.input, conjoin(pushed)),)), kept)
    if isinstance(child, Join):
        return _push_into_join(node, child)
    if isinstance(child, Scan) and child.limit is None:
        return dataclasses.replace(child, predicates=child.predicates + tuple(split_conjuncts(node.predicate)))
    return node


def push_predicates_down(plan: LogicalNode) -> LogicalNode:
    return transform_down(plan, _push)

"""Merge adjacent projections, and drop projections that change nothing.

`select` after `with_columns` after `rename` collapses into one projection, computed in one
pass. An inner expression is inlined only where that does not compute it twice.
"""

from __future__ import annotations

from collections import Counter

from ...expr.tree import Alias, Column, Expr, Literal, transform, unalias, walk
from ..logical import LogicalNode, Project, transform_up


def _is_identity(node: Project) -> bool:
    schema = node.input.schema
    return schema is not None and len(node.exprs) == len(schema) and all(
        isinstance(e, Column) and e.name == name for e, name in zip(node.exprs, schema.names))


def _merge(node: LogicalNode) -> LogicalNode:
    if not isinstance(node, Project):
        return node
    if _is_identity(node):
        return node.input
    inner = node.input
    if not isinstance(inner, Project):
        return node
    definitions = {e.output_name(): unalias(e) for e in inner.exprs}
    uses = Counter(n.name for e in node.exprs for n in walk(e) if isinstance(n, Column))
    for name, definition in definitions.items():
        if uses[name] > 1 and not isinstance(definition, (Column, Literal)):
            return node

    def inline(expr: Expr) -> Expr:
        rewritten = transform(expr, lambda e: definitions[e.name] if isinstance(e, Column) else e)
        if rewritten.output_name() != expr.output_name():
            rewritten = Alias(unalias(rewritten), expr.output_name())
        return rewritten

    return Project(inner.input, tuple(inline(e) for e in node.exprs))


def merge_projections(plan: LogicalNode) -> LogicalNode:
    return transform_up(plan, _merge)

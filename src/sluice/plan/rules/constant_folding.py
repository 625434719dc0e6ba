"""Constant folding: evaluate literal-only subexpressions once, at plan time.

`col("x") > 2 * 3` becomes `col("x") > 6`, and boolean identities simplify (`p & True` is
`p`). A filter that folds to `True` disappears. This makes later rules see simpler
predicates, and lets more of them compile to pyarrow for pushdown.
"""

from __future__ import annotations

import dataclasses

import polars as pl

from ...expr.compile import to_polars
from ...expr.tree import Alias, BinaryOp, Column, Expr, Literal, UnaryOp, transform
from ..logical import Filter, LogicalNode, Project, Scan, transform_up


def _is_bool(expr: Expr, value: bool) -> bool:
    return isinstance(expr, Literal) and isinstance(expr.value, bool) and expr.value is value


def _simplify(node: Expr) -> Expr:
    if isinstance(node, BinaryOp) and node.op in ("&", "|"):
        identity, absorbing = (True, False) if node.op == "&" else (False, True)
        for this, other in ((node.left, node.right), (node.right, node.left)):
            if _is_bool(this, identity):
                return other
            if _is_bool(this, absorbing):
                return Literal(absorbing)
    if isinstance(node, UnaryOp) and node.op == "not" and isinstance(node.operand, Literal) \
            and isinstance(node.operand.value, bool):
        return Literal(not node.operand.value)
    if isinstance(node, (Column, Literal, Alias)) or not node.children:
        return node
    if all(isinstance(c, Literal) for c in node.children):
        try:
            value = pl.select(to_polars(node)).item()
        except Exception:  # leave anything Polars cannot evaluate alone for run time to report
            return node
        return Literal(value)
    return node


def fold_expression(expr: Expr, keep_name: bool = False) -> Expr:
    """Fold `expr`; with keep_name (a projection's output), alias the result to the old name."""
    folded = transform(expr, _simplify)
    if keep_name and folded is not expr and folded.output_name() != expr.output_name():
        folded = Alias(folded, expr.output_name())
    return folded


def _fold_node(node: LogicalNode) -> LogicalNode:
    if isinstance(node, Filter):
        predicate = fold_expression(node.predicate)
        if _is_bool(predicate, True):
            return node.input
        return node if predicate is node.predicate else Filter(node.input, predicate)
    if isinstance(node, Project):
        exprs = tuple(fold_expression(e, keep_name=True) for e in node.exprs)
        return node if all(a is b for a, b in zip(exprs, node.exprs)) else Project(node.input, exprs)
    if isinstance(node, Scan) and node.predicates:
        predicates = tuple(p for p in (fold_expression(e) for e in node.predicates) if not _is_bool(p, True))
        return dataclasses.replace(node, predicates=predicates)
    return node


def fold_constants(plan: LogicalNode) -> LogicalNode:
    return transform_up(plan, _fold_node)

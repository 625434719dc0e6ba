"""Window functions in a query: per-partition computations that keep every row.

`col("amount").rolling_sum("7d").over("user", order_by="ts")` needs every row of a user
together and in order. `extract_windows` lifts such expressions out of a select(),
with_columns() or filter() into `Window` plan nodes, one per distinct (partition_by,
order_by) spec, and leaves plain references to their output columns behind, so the rest of
the planner never sees a window expression. `kernels.window` checks and evaluates the
functions.
"""

from __future__ import annotations

from ..errors import ExpressionTypeError
from ..expr.tree import Aggregation, Alias, Column, Expr, Over, WindowFunction, transform, walk
from ..kernels.window import WindowSpec
from .logical import Window


def over_every_row(expr: Expr) -> Expr:
    """A bare aggregation in a row context (select, with_columns, filter) is over every row, as in
    Polars: `col('x').sum()` there means `col('x').sum().over()`. Evaluated block by block, it gave
    each block its own sum."""
    def wrap(node: Expr) -> Expr:
        return Over(node, (), (), ()) if isinstance(node, Aggregation) else node

    outside_windows = lambda node: not isinstance(node, (Over, WindowFunction, Aggregation))  # noqa: E731
    return transform(expr, wrap, outside_windows)


def has_window(expr: Expr) -> bool:
    return any(isinstance(node, (Over, WindowFunction)) for node in walk(expr))


def extract_windows(plan, exprs: list[Expr]):
    """Returns (plan with `Window` nodes on top, exprs with each window replaced by its column)."""
    found: dict[tuple, tuple[str, Over]] = {}

    def lift(node: Expr) -> Expr:
        if isinstance(node, WindowFunction):
            raise ExpressionTypeError(
                f"`{node!r}` needs .over(...) to say which rows it runs over, e.g. "
                f"`{node!r}.over(partition_by='user', order_by='ts')`.")
        if not isinstance(node, Over):
            return node
        key = node.key()
        if key not in found:
            found[key] = (f"__sluice_window_{len(found)}", node)
        return Column(found[key][0])

    outer_only = lambda node: not isinstance(node, (Over, WindowFunction))  # noqa: E731 - an Over is lifted whole
    rewritten = [transform(e, lift, outer_only) for e in exprs]
    by_spec: dict[WindowSpec, list[Expr]] = {}
    for name, over in found.values():
        spec = WindowSpec(over.partition_by, over.order_by, over.descending)
        by_spec.setdefault(spec, []).append(Alias(over.function, name))
    for spec, functions in by_spec.items():
        plan = Window(plan, spec, tuple(functions))
    return plan, rewritten

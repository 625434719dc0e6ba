"""SQL window functions (`f(...) OVER (PARTITION BY ... ORDER BY ... [ROWS frame])`) as sluice window expressions.

Ranking functions, LAG and LEAD map one to one. An aggregate over a whole partition is an
aggregation `.over(partition)`; with `ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` it is a
running (cum_*) function, with `ROWS BETWEEN n PRECEDING AND CURRENT ROW` a rolling one over n+1
rows. SQL's default frame once there is an ORDER BY is a RANGE frame, whose peers (rows tied on
the order) share one value; sluice has no such frame, so that case asks for the ROWS frame to be
written out rather than give a different answer.
"""

from __future__ import annotations

from sqlglot import exp

from ..expr.tree import Expr, Literal, dense_rank, lit, rank, row_number
from .expressions import sql_key
from .relations import Rel

_RUNNING = {exp.Sum: "cum_sum", exp.Min: "cum_min", exp.Max: "cum_max", exp.Count: "cum_count"}
_ROLLING = {exp.Sum: "rolling_sum", exp.Avg: "rolling_mean", exp.Min: "rolling_min", exp.Max: "rolling_max",
            exp.Count: "rolling_count"}
_WHOLE = {exp.Sum: "sum", exp.Avg: "mean", exp.Min: "min", exp.Max: "max", exp.Count: "count"}


def windows_in(nodes: list[exp.Expression]) -> list[exp.Window]:
    found = []
    for node in nodes:
        found += [w for w in node.find_all(exp.Window) if not any(isinstance(p, exp.Select) for p in _parents(w, node))]
    return found


def _parents(node: exp.Expression, top: exp.Expression):
    parent = node.parent
    while parent is not None and parent is not top:
        yield parent
        parent = parent.parent


def with_windows(planner, rel: Rel, nodes: list[exp.Expression], replaced: dict[str, Expr]):
    """Plan the window functions of `nodes` (a SELECT list, ORDER BY): returns the relation, with any
    partition or order key that is an expression computed as a column, and each window's expression."""
    replaced = dict(replaced)
    for window in windows_in(nodes):
        key = sql_key(window)
        if key in replaced:
            continue
        partition = []
        for node in window.args.get("partition_by") or []:
            rel, name = rel.key_column(planner.translate(rel, node, replaced, "PARTITION BY"))
            partition.append(name)
        order, descending = [], []
        for item in (window.args["order"].expressions if window.args.get("order") else []):
            rel, name = rel.key_column(planner.translate(rel, item.this, replaced, "a window's ORDER BY"))
            order.append(name)
            descending.append(bool(item.args.get("desc")))
        function = _function(planner, rel, window, bool(order), replaced)
        replaced[key] = function.over(partition or None, order or None, descending or False)
    return rel, replaced


def _function(planner, rel: Rel, window: exp.Window, ordered: bool, replaced) -> Expr:
    node = window.this
    query = planner.query
    if isinstance(node, exp.RowNumber):
        return row_number()
    if isinstance(node, exp.Rank):
        return rank()
    if isinstance(node, exp.DenseRank):
        return dense_rank()
    if isinstance(node, (exp.Lag, exp.Lead)):
        offset = node.args.get("offset")
        default = node.args.get("default")
        n = int(offset.this) if isinstance(offset, exp.Literal) else 1 if offset is None else None
        fill = planner.translate(rel, default, replaced, "LAG/LEAD") if default is not None else lit(None)
        if n is None or not isinstance(fill, Literal):
            raise query.error("LAG/LEAD take a constant offset and default", node)
        value = planner.translate(rel, node.this, replaced, "LAG/LEAD")
        return value.lag(n, fill.value) if isinstance(node, exp.Lag) else value.lead(n, fill.value)
    kind = type(node)
    if kind not in _WHOLE:
        raise query.error(f"{node.sql_name()}() OVER (...) is not supported", node,
                          "Window functions: ROW_NUMBER, RANK, DENSE_RANK, LAG, LEAD, and SUM, AVG, MIN, MAX, COUNT.")
    if kind is exp.Count and isinstance(node.this, exp.Star):
        argument = lit(1)
    elif isinstance(node.this, exp.Distinct):
        raise query.error("DISTINCT inside a window aggregate is not supported", node)
    else:
        argument = planner.translate(rel, node.this, replaced, "a window function")
    spec = window.args.get("spec")
    frame = _frame(spec)
    if frame == "whole" and not ordered:
        return getattr(argument, _WHOLE[kind])()
    if frame == "running" and ordered:
        if kind is exp.Avg:
            return argument.cum_sum() / argument.cum_count()
        return getattr(argument, _RUNNING[kind])()
    if isinstance(frame, int) and ordered:
        return getattr(argument, _ROLLING[kind])(frame)
    raise query.error(
        f"This window frame is not supported: {window.sql()}", window,
        "With ORDER BY, write ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW (a running total) or ROWS BETWEEN "
        "n PRECEDING AND CURRENT ROW (the last n+1 rows); without ORDER BY the aggregate covers the partition.")


def _frame(spec: exp.WindowSpec | None):
    """'whole' (no frame), 'running', a row count n+1 for `n PRECEDING`, or None for any other frame."""
    if spec is None:
        return "whole"
    kind = (spec.args.get("kind") or "").upper()
    start, side, end = spec.args.get("start"), (spec.args.get("start_side") or "").upper(), spec.args.get("end")
    end_text = end.upper() if isinstance(end, str) else end.sql().upper() if end is not None else ""
    if kind != "ROWS" or end_text != "CURRENT ROW" or side != "PRECEDING":
        return None
    if isinstance(start, str) and start.upper() == "UNBOUNDED":
        return "running"
    if isinstance(start, exp.Literal) and not start.is_string:
        return int(start.this) + 1
    return None


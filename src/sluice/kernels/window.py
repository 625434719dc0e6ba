"""Evaluating window functions over one partition group's rows, with Polars.

The physical planner hash-partitions a `Window` plan node by its partition columns; each
reduce task sorts its rows by the partition and order columns and evaluates the functions
here (`apply_window`); `check_window` gives a window's plan-time errors. `plan.windows` lifts window expressions out of a query into such nodes.

Semantics follow SQL (checked against DuckDB): row_number/rank/dense_rank as in SQL; lag and
lead return `default` past the partition's edge; cumulative functions skip nulls (a null
row carries the running value, leading nulls stay null); a rolling window over `n` rows
covers the current row and the n-1 before it; a rolling window over a time span covers
rows whose order value lies in (t - span, t] by default (`closed="both"` gives SQL's
`RANGE BETWEEN span PRECEDING AND CURRENT ROW`). Null order values sort last.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from ..errors import ExpressionTypeError, PlanError, column_not_found
from ..expr.compile import single_phase, to_polars
from ..expr.tree import Aggregation, Alias, Expr, Over, WindowFunction, walk
from ..expr.typecheck import NUMERIC, TEMPORAL, check_expression, kind_of_type
from ..expr.types import arrow_to_polars, polars_to_arrow

ROW_NUMBER, TIE_GROUP = "__sluice_row", "__sluice_tie"
NEEDS_ORDER = ("row_number", "rank", "dense_rank", "lag", "lead", "cum_sum", "cum_min", "cum_max", "cum_count")
NUMERIC_ONLY = ("cum_sum", "rolling_sum", "rolling_mean")


@dataclass(frozen=True)
class WindowSpec:
    partition_by: tuple[str, ...]
    order_by: tuple[str, ...]
    descending: tuple[bool, ...]

    def describe(self) -> str:
        order = ", ".join(f"{c}{' desc' if d else ''}" for c, d in zip(self.order_by, self.descending))
        return f"partition_by=[{', '.join(self.partition_by)}] order_by=[{order}]"


def check_window(spec: WindowSpec, functions: tuple[Expr, ...], schema: pa.Schema) -> None:
    """Plan-time errors for a window: unknown columns, missing order, misused functions."""
    for name in spec.partition_by + spec.order_by:
        if name not in schema.names:
            raise column_not_found(name, schema, "over()")
    for aliased in functions:
        function = aliased.expr if isinstance(aliased, Alias) else aliased
        _check_function(function, spec, schema)


def _check_function(function: Expr, spec: WindowSpec, schema: pa.Schema) -> None:
    if isinstance(function, Aggregation):
        if spec.order_by:
            raise PlanError(
                f"`{function!r}.over(...)` with order_by: an aggregation over a window covers the whole "
                f"partition. Drop order_by, or use a running function such as cum_sum() or rolling_sum().")
        if function.arg is not None:
            _check_argument(function, function.arg, schema)
        return
    if not isinstance(function, WindowFunction):
        raise PlanError(
            f"over() applies to a window function (row_number, rank, lag, lead, cum_*, rolling_*) or an "
            f"aggregation (sum, mean, ...), not to `{function!r}`. Apply over() to that part of the expression.")
    if not spec.order_by and (function.fn in NEEDS_ORDER or function.fn.startswith("rolling_")):
        raise PlanError(f"`{function!r}` depends on row order; give one: .over(partition_by=..., order_by='ts').")
    if function.arg is not None:
        kind = _check_argument(function, function.arg, schema)
        if function.fn in NUMERIC_ONLY and kind not in (NUMERIC, "null", "other"):
            raise ExpressionTypeError(f"`{function!r}` needs a number, but `{function.arg!r}` is {kind}. "
                                      f"Cast it first, e.g. .cast('float64').")
    if function.fn.startswith("rolling_") and isinstance(function.params[0], str):
        order = spec.order_by
        if len(order) != 1 or kind_of_type(schema.field(order[0]).type) != TEMPORAL or spec.descending[0]:
            raise PlanError(
                f"`{function!r}` spans time, so it needs exactly one ascending date or timestamp order_by column "
                f"(got order_by={list(order)}). Order by the event time, or give a row count such as 7.")


def _check_argument(function: Expr, arg: Expr, schema: pa.Schema) -> str:
    if any(isinstance(n, (Over, WindowFunction, Aggregation)) for n in walk(arg)):
        raise PlanError(f"`{function!r}`: window functions and aggregations cannot be nested. "
                        f"Compute the inner one in its own with_columns() first.")
    return check_expression(arg, schema, " in a window function")


# ---------------------------------------------------------------- evaluation

def apply_window(frame: pl.DataFrame, spec: WindowSpec, functions: tuple[Expr, ...]) -> pl.DataFrame:
    """Sort one partition group's rows and add the window columns."""
    keys = list(spec.partition_by) + list(spec.order_by)
    if keys:
        frame = frame.sort(keys, descending=[False] * len(spec.partition_by) + list(spec.descending),
                           nulls_last=True, maintain_order=True)
    helpers = _helper_columns(spec, functions)
    if helpers:
        frame = frame.with_columns(helpers)
    frame = frame.with_columns([_compile(f, spec) for f in functions])
    return frame.drop([h.meta.output_name() for h in helpers])


def _helper_columns(spec: WindowSpec, functions) -> list[pl.Expr]:
    used = {(f.expr if isinstance(f, Alias) else f).fn for f in functions
            if isinstance(f.expr if isinstance(f, Alias) else f, WindowFunction)}
    helpers = []
    if used & {"row_number", "rank"}:
        helpers.append(_over(pl.int_range(pl.len(), dtype=pl.Int64), spec.partition_by).alias(ROW_NUMBER))
    if used & {"rank", "dense_rank"}:
        order = pl.struct(list(spec.order_by)) if len(spec.order_by) > 1 else pl.col(spec.order_by[0])
        helpers.append(_over(order.rle_id().cast(pl.Int64), spec.partition_by).alias(TIE_GROUP))
    return helpers


def _over(expr: pl.Expr, partition_by) -> pl.Expr:
    return expr.over(list(partition_by)) if partition_by else expr


def _compile(aliased: Expr, spec: WindowSpec) -> pl.Expr:
    name = aliased.output_name()
    function = aliased.expr if isinstance(aliased, Alias) else aliased
    if isinstance(function, Aggregation):
        return _over(single_phase(function), spec.partition_by).alias(name)
    fn, params = function.fn, function.params
    if fn == "row_number":
        return (pl.col(ROW_NUMBER) + 1).alias(name)
    if fn == "dense_rank":
        return (pl.col(TIE_GROUP) + 1).alias(name)
    if fn == "rank":
        return (pl.col(ROW_NUMBER).min().over(list(spec.partition_by) + [TIE_GROUP]) + 1).alias(name)
    arg = to_polars(function.arg)
    if fn in ("lag", "lead"):
        n, default = params
        expr = arg.shift(n if fn == "lag" else -n, fill_value=default)
    elif fn == "cum_count":
        expr = arg.is_not_null().cast(pl.Int64).cum_sum()
    elif fn.startswith("cum_"):
        expr = getattr(arg, fn)().forward_fill()
    else:
        expr = _rolling(fn.removeprefix("rolling_"), arg, params, spec)
    return _over(expr, spec.partition_by).alias(name)


def _rolling(kind: str, arg: pl.Expr, params: tuple, spec: WindowSpec) -> pl.Expr:
    window, closed = params
    if kind == "count":
        arg, kind = arg.is_not_null().cast(pl.Int64), "sum"
    if isinstance(window, int):
        return getattr(arg, f"rolling_{kind}")(window, min_samples=1)
    return getattr(arg, f"rolling_{kind}_by")(spec.order_by[0], window, closed=closed, min_samples=1)


def window_output_schema(input_schema: pa.Schema, spec: WindowSpec, functions: tuple[Expr, ...]) -> pa.Schema:
    try:
        frame = apply_window(arrow_to_polars(input_schema.empty_table()), spec, functions)
    except pl.exceptions.PolarsError as exc:
        raise ExpressionTypeError(f"Cannot compute window functions over {spec.describe()}: "
                                  f"{str(exc).splitlines()[0]}") from None
    return polars_to_arrow(frame).schema

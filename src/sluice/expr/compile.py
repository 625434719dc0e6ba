"""Compiling an expression tree: to Polars, to run over blocks, and to a pyarrow dataset
expression, for a scan to prune partitions and row groups with.

An aggregation outside a group_by (`select(col("x").sum())`, or inside `.over(...)`) compiles
here to its one-pass form, with SQL's null semantics; `kernels.aggregates` holds the
two-phase forms a grouped aggregation is split into.
"""

from __future__ import annotations

import datetime
import decimal
import re
from typing import Callable

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ExpressionTypeError
from .library_compile import LIBRARY_POLARS_CALLS
from .tree import Aggregation, Alias, BinaryOp, Call, Column, Expr, Literal, Over, UnaryOp, When, WindowFunction
from .types import to_polars_type

# ---------------------------------------------------------------- compile to Polars

_POLARS_BINARY: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "//": lambda a, b: a // b, "%": lambda a, b: a % b,
    "**": lambda a, b: a ** b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "&": lambda a, b: a & b, "|": lambda a, b: a | b,
}

_POLARS_UNARY: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "neg": lambda a: -a, "not": lambda a: ~a,
    "is_null": lambda a: a.is_null(), "is_not_null": lambda a: a.is_not_null(),
}

_POLARS_CALLS: dict[str, Callable[..., pl.Expr]] = {
    "fill_null": lambda a, v: a.fill_null(v),
    "is_in": lambda a, values: a.is_in(list(values), nulls_equal=False) if values else pl.lit(False),
    "between": lambda a, lo, hi: a.is_between(lo, hi, closed="both"),
    "cast": lambda a, dtype: a.cast(to_polars_type(dtype)),
    "hash": lambda a: a.hash(seed=0),
    "abs": lambda a: a.abs(),
    "round": lambda a, decimals: a.round(decimals, mode="half_away_from_zero"),
    "str.concat": lambda *parts: pl.concat_str(list(parts)),
    "str.contains": lambda a, pattern, literal: a.str.contains(pattern, literal=literal),
    "str.starts_with": lambda a, prefix: a.str.starts_with(prefix),
    "str.ends_with": lambda a, suffix: a.str.ends_with(suffix),
    "str.lower": lambda a: a.str.to_lowercase(),
    "str.upper": lambda a: a.str.to_uppercase(),
    "str.len": lambda a: a.str.len_chars().cast(pl.Int64),
    "str.slice": lambda a, offset, length: a.str.slice(offset, length),
    "str.like": lambda a, pattern, case_insensitive: like_to_polars(a, pattern, case_insensitive),
    "str.replace": lambda a, pattern, value, literal: a.str.replace_all(pattern, value, literal=literal),
    "dt.year": lambda a: a.dt.year().cast(pl.Int64),
    "dt.month": lambda a: a.dt.month().cast(pl.Int64),
    "dt.day": lambda a: a.dt.day().cast(pl.Int64),
    "dt.hour": lambda a: a.dt.hour().cast(pl.Int64),
    "dt.truncate": lambda a, every: a.dt.truncate(every),
    "dt.offset_by": lambda a, by: a.dt.offset_by(by),
    **LIBRARY_POLARS_CALLS,
}


def like_to_polars(a: pl.Expr, pattern: str, case_insensitive: bool) -> pl.Expr:
    """SQL LIKE: a prefix, suffix or infix pattern runs as a plain string test; any other as an anchored regex."""
    if not case_insensitive and "_" not in pattern:
        inner = pattern.strip("%")
        if "%" not in inner:
            starts, ends = pattern.startswith("%"), pattern.endswith("%") and len(pattern) > 1
            if starts and ends:
                return a.str.contains(inner, literal=True)
            if starts:
                return a.str.ends_with(inner)
            if ends:
                return a.str.starts_with(inner)
            return a == pl.lit(inner)
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return a.str.contains(f"(?s{'i' if case_insensitive else ''})^{regex}$")


def _polars_literal(value) -> pl.Expr:
    if isinstance(value, decimal.Decimal):
        return pl.lit(value, dtype=pl.Decimal(38, max(0, -value.as_tuple().exponent)))
    return pl.lit(value)


def to_polars(expr: Expr) -> pl.Expr:
    if isinstance(expr, Column):
        return pl.col(expr.name)
    if isinstance(expr, Literal):
        return _polars_literal(expr.value)
    if isinstance(expr, Alias):
        return to_polars(expr.expr).alias(expr.name)
    if isinstance(expr, BinaryOp):
        return _POLARS_BINARY[expr.op](to_polars(expr.left), to_polars(expr.right))
    if isinstance(expr, UnaryOp):
        return _POLARS_UNARY[expr.op](to_polars(expr.operand))
    if isinstance(expr, Call):
        return _POLARS_CALLS[expr.fn](*(to_polars(a) for a in expr.args), *expr.params)
    if isinstance(expr, Aggregation):
        return single_phase(expr)
    if isinstance(expr, (Over, WindowFunction)):
        raise ExpressionTypeError(
            f"`{expr!r}` is a window function; it can be used in select(), with_columns() and filter(), "
            f"with .over(partition_by=..., order_by=...).")
    if isinstance(expr, When):
        b = expr.branches
        chain = pl.when(to_polars(b[0])).then(to_polars(b[1]))
        for i in range(2, len(b), 2):
            chain = chain.when(to_polars(b[i])).then(to_polars(b[i + 1]))
        return chain.otherwise(to_polars(expr.default))
    raise ExpressionTypeError(f"Cannot compile expression {expr!r}.")


def aggregate_argument(agg: Aggregation) -> pl.Expr:
    assert agg.arg is not None
    return to_polars(agg.arg)


def sql_sum(x: pl.Expr) -> pl.Expr:
    """A sum that is null over no non-null values, as in SQL (Polars gives 0)."""
    return pl.when(x.count() > 0).then(x.sum())


def single_phase(agg: Aggregation) -> pl.Expr:
    """The aggregate over raw rows, with SQL null semantics."""
    if agg.fn == "count_all":
        return pl.len().cast(pl.Int64)
    x = aggregate_argument(agg)
    return {
        "sum": lambda: sql_sum(x),
        "mean": lambda: x.mean(),
        "min": lambda: x.min(),
        "max": lambda: x.max(),
        "count": lambda: x.count().cast(pl.Int64),
        "count_distinct": lambda: x.drop_nulls().n_unique().cast(pl.Int64),
        "first": lambda: x.first(),
        "last": lambda: x.last(),
        "std": lambda: x.std(ddof=1),
        "var": lambda: x.var(ddof=1),
        "median": lambda: x.median(),
        "quantile": lambda: x.quantile(agg.params[0], interpolation="linear"),
        "collect_list": lambda: x.implode(),
    }[agg.fn]()


# ---------------------------------------------------------------- compile to pyarrow (pushdown)

ARROW_COMPARISONS = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _arrow_scalar_ok(value) -> bool:
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        return False  # Polars compares these exactly; an Arrow int64 scalar cannot hold them
    return isinstance(value, (bool, int, float, str, datetime.date, datetime.datetime, decimal.Decimal))


def to_arrow_filter(expr: Expr, schema: pa.Schema | None = None) -> pc.Expression | None:
    """The pyarrow dataset expression for a predicate, or None if it cannot be pushed down.

    Only what a scan can use to skip data is compiled: columns compared with literals,
    null tests, membership, ranges, and boolean logic over those. Comparisons that involve
    floating-point columns stay out: Arrow orders NaN as IEEE does (every comparison false),
    while Polars and SQL engines order NaN above every number, and pushdown must never change
    a result. Without a schema, no column is known to be non-float, so only literals decide.
    """
    return _ArrowFilterCompiler(schema).compile(expr)


class _ArrowFilterCompiler:
    def __init__(self, schema: pa.Schema | None):
        self.schema = schema

    def compile(self, expr: Expr):
        if isinstance(expr, BinaryOp):
            if expr.op in ("&", "|"):
                left, right = self.compile(expr.left), self.compile(expr.right)
                if left is None or right is None:
                    return None
                return (left & right) if expr.op == "&" else (left | right)
            if expr.op in ARROW_COMPARISONS:
                left, right = self.operand(expr.left, expr.right), self.operand(expr.right, expr.left)
                if left is None or right is None:
                    return None
                return ARROW_COMPARISONS[expr.op](left, right)
            return None
        if isinstance(expr, UnaryOp):
            inner = self.compile(expr.operand) if expr.op == "not" else self.field(expr.operand, nan_safe=True)
            if inner is None:
                return None
            return {"not": lambda e: ~e, "is_null": lambda e: e.is_null(),
                    "is_not_null": lambda e: e.is_valid()}.get(expr.op, lambda e: None)(inner)
        if isinstance(expr, Call) and expr.fn == "is_in":
            field = self.field(expr.args[0])
            values = expr.params[0]
            if field is None or not values or not all(_arrow_scalar_ok(v) for v in values):
                return None
            if self.view_type(expr.args[0]) is not None:
                return None  # Arrow has no is_in kernel for string_view: such a file is not pruned by it
            return field.isin(list(values))
        if isinstance(expr, Call) and expr.fn == "between":
            field = self.field(expr.args[0])
            low, high = self.operand(expr.args[1], expr.args[0]), self.operand(expr.args[2], expr.args[0])
            if field is None or low is None or high is None:
                return None
            return (field >= low) & (field <= high)
        if isinstance(expr, Literal) and isinstance(expr.value, bool):
            return pc.scalar(expr.value)
        return None

    def field(self, expr: Expr, nan_safe: bool = False):
        if not isinstance(expr, Column) or self.schema is None or expr.name not in self.schema.names:
            return None
        if not nan_safe and pa.types.is_floating(self.schema.field(expr.name).type):
            return None
        return pc.field(expr.name)

    def view_type(self, expr: Expr) -> pa.DataType | None:
        """A column's string_view or binary_view type, whose literals must have that type too."""
        if isinstance(expr, Column) and self.schema is not None and expr.name in self.schema.names:
            kind = self.schema.field(expr.name).type
            if kind in (pa.string_view(), pa.binary_view()):
                return kind
        return None

    def operand(self, expr: Expr, other: Expr | None = None):
        """A comparison's side; `other` is the side it is compared with (a literal takes a view column's type)."""
        if isinstance(expr, Column):
            return self.field(expr)
        if isinstance(expr, Literal) and expr.value is not None and _arrow_scalar_ok(expr.value):
            if isinstance(expr.value, float) and expr.value != expr.value:
                return None
            view = self.view_type(other) if isinstance(expr.value, (str, bytes)) else None
            return pc.scalar(pa.scalar(expr.value, view) if view is not None else expr.value)
        return None

"""Column expressions: `col()`, `lit()`, `when()` and the immutable tree they build.

An expression is built once by the user and then used three ways: it is type-checked against
a schema when the plan is built (`typecheck`), so a typo fails before any data is read;
compiled to a Polars expression to run over blocks (`compile.to_polars`); and, where it can
be, compiled to a pyarrow dataset expression so a scan can prune partitions and row groups
with it (`compile.to_arrow_filter`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pyarrow as pa

from ..errors import ExpressionTypeError
from .library import ExprFunctions, StringLibrary, TemporalLibrary
from .types import to_arrow_type

COMPARISON_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})

class Expr(ExprFunctions):
    """Base of every expression node. Nodes are frozen dataclasses; operators build new ones.

    The function library (math, NaN handling, `.list`, `.struct`) comes from `library.ExprFunctions`."""

    # Arithmetic
    def __add__(self, other): return BinaryOp("+", self, to_expr(other))
    def __radd__(self, other): return BinaryOp("+", to_expr(other), self)
    def __sub__(self, other): return BinaryOp("-", self, to_expr(other))
    def __rsub__(self, other): return BinaryOp("-", to_expr(other), self)
    def __mul__(self, other): return BinaryOp("*", self, to_expr(other))
    def __rmul__(self, other): return BinaryOp("*", to_expr(other), self)
    def __truediv__(self, other): return BinaryOp("/", self, to_expr(other))
    def __rtruediv__(self, other): return BinaryOp("/", to_expr(other), self)
    def __floordiv__(self, other): return BinaryOp("//", self, to_expr(other))
    def __rfloordiv__(self, other): return BinaryOp("//", to_expr(other), self)
    def __mod__(self, other): return BinaryOp("%", self, to_expr(other))
    def __rmod__(self, other): return BinaryOp("%", to_expr(other), self)
    def __pow__(self, other): return BinaryOp("**", self, to_expr(other))
    def __neg__(self): return UnaryOp("neg", self)

    # Comparisons. Expressions are compared structurally with `same_as`, never with `==`.
    def __eq__(self, other): return BinaryOp("==", self, to_expr(other))  # type: ignore[override]
    def __ne__(self, other): return BinaryOp("!=", self, to_expr(other))  # type: ignore[override]
    def __lt__(self, other): return BinaryOp("<", self, to_expr(other))
    def __le__(self, other): return BinaryOp("<=", self, to_expr(other))
    def __gt__(self, other): return BinaryOp(">", self, to_expr(other))
    def __ge__(self, other): return BinaryOp(">=", self, to_expr(other))
    __hash__ = object.__hash__

    # Boolean logic
    def __and__(self, other): return BinaryOp("&", self, to_expr(other))
    def __rand__(self, other): return BinaryOp("&", to_expr(other), self)
    def __or__(self, other): return BinaryOp("|", self, to_expr(other))
    def __ror__(self, other): return BinaryOp("|", to_expr(other), self)
    def __invert__(self): return UnaryOp("not", self)

    def __bool__(self):
        raise TypeError(
            "A sluice expression has no truth value. Combine conditions with & and | "
            "(not `and`/`or`), and parenthesize comparisons: (col('a') > 1) & (col('b') < 2)."
        )

    # Null handling and membership
    def is_null(self) -> Expr: return UnaryOp("is_null", self)
    def is_not_null(self) -> Expr: return UnaryOp("is_not_null", self)
    def fill_null(self, value) -> Expr: return Call("fill_null", (self, to_expr(value)))
    def is_in(self, values: Iterable) -> Expr: return Call("is_in", (self,), (tuple(values),))
    def between(self, low, high) -> Expr: return Call("between", (self, to_expr(low), to_expr(high)))

    def cast(self, dtype) -> Expr: return Call("cast", (self,), (to_arrow_type(dtype),))
    def alias(self, name: str) -> Expr: return Alias(self, name)
    def hash(self) -> Expr: return Call("hash", (self,))
    def abs(self) -> Expr: return Call("abs", (self,))

    def round(self, decimals: int = 0) -> Expr:
        """Round half away from zero to `decimals` places, as SQL's ROUND does. A float is scaled by 10**decimals,
        rounded and scaled back (Polars), so one whose binary value lies just below a half can go either way:
        14.95 gives 15.0, where DuckDB, rounding the exact binary value 14.9499..., gives 14.9. Cast to a
        decimal first for exact decimal rounding."""
        if isinstance(decimals, bool) or not isinstance(decimals, int):
            raise ExpressionTypeError(f"round({decimals!r}): the number of decimals must be an integer.")
        return Call("round", (self,), (decimals,))

    # Aggregations: valid inside agg() and over(); see aggregates.py for how they run
    def sum(self) -> Expr: return Aggregation("sum", self)
    def mean(self) -> Expr: return Aggregation("mean", self)
    def min(self) -> Expr: return Aggregation("min", self)
    def max(self) -> Expr: return Aggregation("max", self)
    def count(self) -> Expr: return Aggregation("count", self)
    def count_distinct(self) -> Expr: return Aggregation("count_distinct", self)
    def first(self) -> Expr: return Aggregation("first", self)
    def last(self) -> Expr: return Aggregation("last", self)
    def std(self) -> Expr: return Aggregation("std", self)
    def var(self) -> Expr: return Aggregation("var", self)
    def median(self) -> Expr: return Aggregation("median", self)
    def quantile(self, q: float) -> Expr:
        if not 0 <= q <= 1:
            raise ExpressionTypeError(f"quantile({q!r}): q must be between 0 and 1.")
        return Aggregation("quantile", self, (float(q),))
    def collect_list(self) -> Expr: return Aggregation("collect_list", self)

    # Window functions: evaluated over the rows of a partition, once `.over(...)` says which
    def lag(self, n: int = 1, default=None) -> Expr: return _window("lag", self, (_offset(n, "lag"), default))
    def lead(self, n: int = 1, default=None) -> Expr: return _window("lead", self, (_offset(n, "lead"), default))
    def cum_sum(self) -> Expr: return _window("cum_sum", self)
    def cum_min(self) -> Expr: return _window("cum_min", self)
    def cum_max(self) -> Expr: return _window("cum_max", self)
    def cum_count(self) -> Expr: return _window("cum_count", self)
    def rolling_sum(self, window: int | str, closed: str = "right") -> Expr: return _rolling("sum", self, window, closed)
    def rolling_mean(self, window: int | str, closed: str = "right") -> Expr:
        return _rolling("mean", self, window, closed)
    def rolling_min(self, window: int | str, closed: str = "right") -> Expr: return _rolling("min", self, window, closed)
    def rolling_max(self, window: int | str, closed: str = "right") -> Expr: return _rolling("max", self, window, closed)
    def rolling_count(self, window: int | str, closed: str = "right") -> Expr:
        return _rolling("count", self, window, closed)

    def over(self, partition_by: str | Iterable[str] | None = None, order_by: str | Iterable[str] | None = None,
             descending: bool | Iterable[bool] = False) -> Expr:
        """Evaluate this window function or aggregation per partition, rows ordered by `order_by`."""
        partition = _names(partition_by, "partition_by")
        order = _names(order_by, "order_by")
        flags = (bool(descending),) * len(order) if isinstance(descending, bool) else tuple(map(bool, descending))
        if len(flags) != len(order):
            raise ExpressionTypeError(f"over(): descending has {len(flags)} flags for {len(order)} order_by columns.")
        return Over(self, partition, order, flags)

    @property
    def str(self) -> StringFunctions: return StringFunctions(self)

    @property
    def dt(self) -> TemporalFunctions: return TemporalFunctions(self)

    # Tree protocol, implemented by the nodes
    @property
    def children(self) -> tuple[Expr, ...]: return ()
    def with_children(self, children: tuple[Expr, ...]) -> Expr: return self
    def output_name(self) -> str:
        names = [c.output_name() for c in self.children]
        return names[0] if names else "literal"

    def same_as(self, other: Any) -> bool:
        return isinstance(other, Expr) and self.key() == other.key()

    def key(self) -> tuple:
        return (type(self).__name__, self._own_key(), tuple(c.key() for c in self.children))

    def _own_key(self) -> tuple: return ()

    def call_function(self, fn: str, args: tuple = (), params: tuple = ()) -> Expr:
        """The `Call` node of a library function of this expression; plain values in `args` become literals."""
        return Call(fn, (self,) + tuple(to_expr(a) for a in args), tuple(params))


@dataclass(frozen=True, eq=False)
class Column(Expr):
    name: str

    def output_name(self) -> str: return self.name
    def _own_key(self): return (self.name,)
    def __repr__(self): return f"col({self.name!r})"


@dataclass(frozen=True, eq=False)
class Literal(Expr):
    value: Any

    def _own_key(self): return (type(self.value).__name__, repr(self.value))
    def __repr__(self): return repr(self.value)


@dataclass(frozen=True, eq=False)
class BinaryOp(Expr):
    op: str
    left: Expr
    right: Expr

    @property
    def children(self): return (self.left, self.right)
    def with_children(self, children): return BinaryOp(self.op, *children)
    def _own_key(self): return (self.op,)
    def __repr__(self): return f"({self.left!r} {self.op} {self.right!r})"


@dataclass(frozen=True, eq=False)
class UnaryOp(Expr):
    op: str
    operand: Expr

    @property
    def children(self): return (self.operand,)
    def with_children(self, children): return UnaryOp(self.op, children[0])
    def _own_key(self): return (self.op,)

    def __repr__(self):
        if self.op == "neg":
            return f"-{self.operand!r}"
        if self.op == "not":
            return f"~{self.operand!r}"
        return f"{self.operand!r}.{self.op}()"


@dataclass(frozen=True, eq=False)
class Call(Expr):
    """A named function: its expression arguments, then plain parameters."""

    fn: str
    args: tuple[Expr, ...]
    params: tuple = ()

    @property
    def children(self): return self.args
    def with_children(self, children): return Call(self.fn, tuple(children), self.params)
    def _own_key(self): return (self.fn, repr(self.params))

    def __repr__(self):
        if self.fn == "coalesce":
            return f"coalesce({', '.join(map(repr, self.args))})"
        inner = [repr(a) for a in self.args[1:]] + [
            repr(str(p)) if isinstance(p, pa.DataType) else repr(p) for p in self.params]
        return f"{self.args[0]!r}.{self.fn}({', '.join(inner)})"


@dataclass(frozen=True, eq=False)
class Alias(Expr):
    expr: Expr
    name: str

    @property
    def children(self): return (self.expr,)
    def with_children(self, children): return Alias(children[0], self.name)
    def output_name(self): return self.name
    def _own_key(self): return (self.name,)
    def __repr__(self): return f"{self.expr!r}.alias({self.name!r})"


@dataclass(frozen=True, eq=False)
class When(Expr):
    """`when(c1).then(v1).when(c2).then(v2).otherwise(v)`; `branches` alternate cond, value."""

    branches: tuple[Expr, ...]
    default: Expr

    @property
    def children(self): return self.branches + (self.default,)
    def with_children(self, children): return When(tuple(children[:-1]), children[-1])
    def output_name(self): return self.branches[1].output_name()

    def __repr__(self):
        pairs = self.branches
        text = "".join(f".when({pairs[i]!r}).then({pairs[i + 1]!r})" for i in range(0, len(pairs), 2))
        return f"{text[1:]}.otherwise({self.default!r})"


@dataclass(frozen=True, eq=False)
class Aggregation(Expr):
    """An aggregate over the rows of a group: `col("x").sum()`, or `count()` of rows (arg None)."""

    fn: str
    arg: Expr | None
    params: tuple = ()

    @property
    def children(self): return () if self.arg is None else (self.arg,)
    def with_children(self, children): return Aggregation(self.fn, children[0] if children else None, self.params)
    def output_name(self): return "count" if self.arg is None else self.arg.output_name()
    def _own_key(self): return (self.fn, repr(self.params))

    def __repr__(self):
        inner = ", ".join(repr(p) for p in self.params)
        return "count()" if self.arg is None else f"{self.arg!r}.{self.fn}({inner})"


@dataclass(frozen=True, eq=False)
class WindowFunction(Expr):
    """A function of a row's position in its ordered partition: lag, cum_sum, rolling_mean, row_number..."""

    fn: str
    arg: Expr | None
    params: tuple = ()

    @property
    def children(self): return () if self.arg is None else (self.arg,)
    def with_children(self, children): return WindowFunction(self.fn, children[0] if children else None, self.params)
    def output_name(self): return self.fn if self.arg is None else self.arg.output_name()
    def _own_key(self): return (self.fn, repr(self.params))

    def __repr__(self):
        inner = ", ".join(repr(p) for p in self.params)
        return f"{self.fn}({inner})" if self.arg is None else f"{self.arg!r}.{self.fn}({inner})"


@dataclass(frozen=True, eq=False)
class Over(Expr):
    """`function.over(partition_by, order_by)`: a window function or aggregation per partition."""

    function: Expr
    partition_by: tuple[str, ...]
    order_by: tuple[str, ...]
    descending: tuple[bool, ...]

    @property
    def children(self): return (self.function,)
    def with_children(self, children): return Over(children[0], self.partition_by, self.order_by, self.descending)
    def _own_key(self): return (self.partition_by, self.order_by, self.descending)

    def __repr__(self):
        order = ", ".join(f"{c}{' desc' if d else ''}" for c, d in zip(self.order_by, self.descending))
        return f"{self.function!r}.over(partition_by={list(self.partition_by)}, order_by=[{order}])"


ROLLING_DURATION = re.compile(r"^(\d+(ns|us|ms|s|m|h|d|w|mo|q|y))+$")
ROLLING_CLOSED = ("right", "left", "both", "none")


def _window(fn: str, arg: Expr | None, params: tuple = ()) -> WindowFunction:
    return WindowFunction(fn, arg, params)


def _offset(n, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ExpressionTypeError(f"{name}({n!r}): the offset must be a non-negative integer.")
    return n


def _rolling(fn: str, arg: Expr, window, closed: str) -> WindowFunction:
    if closed not in ROLLING_CLOSED:
        raise ExpressionTypeError(f"rolling_{fn}(closed={closed!r}): use one of {', '.join(ROLLING_CLOSED)}.")
    if isinstance(window, bool) or not isinstance(window, (int, str)):
        raise ExpressionTypeError(f"rolling_{fn}({window!r}): give a row count such as 3, or a time span such as '7d'.")
    if isinstance(window, int) and window < 1:
        raise ExpressionTypeError(f"rolling_{fn}({window}): a window covers at least 1 row.")
    if isinstance(window, str) and not ROLLING_DURATION.match(window):
        raise ExpressionTypeError(
            f"rolling_{fn}({window!r}): unknown time span. Use a count and a unit, e.g. '7d', '12h', '30m', "
            f"'1mo' (units ns, us, ms, s, m, h, d, w, mo, q, y).")
    return WindowFunction(f"rolling_{fn}", arg, (window, closed))


def _names(value, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        if not isinstance(name, str):
            raise ExpressionTypeError(f"over({what}=...) takes column names, got {name!r}.")
    return names


def row_number() -> WindowFunction:
    """1, 2, 3... in `order_by` order within each partition (use with `.over(...)`)."""
    return WindowFunction("row_number", None)


def rank() -> WindowFunction:
    """SQL RANK(): rows that tie on `order_by` share a rank, and the next rank skips (1, 1, 3)."""
    return WindowFunction("rank", None)


def dense_rank() -> WindowFunction:
    """SQL DENSE_RANK(): ties share a rank, with no gaps (1, 1, 2)."""
    return WindowFunction("dense_rank", None)


def count() -> Aggregation:
    """The number of rows in each group."""
    return Aggregation("count_all", None)


class WhenBuilder:
    """The partial `when(...)`/`.then(...)` chain; `otherwise` closes it into a `When`."""

    def __init__(self, branches: tuple[Expr, ...]):
        self._branches = branches

    def then(self, value) -> WhenThen:
        return WhenThen(self._branches + (to_expr(value),))


class WhenThen:
    def __init__(self, branches: tuple[Expr, ...]):
        self._branches = branches

    def when(self, condition: Expr) -> WhenBuilder:
        return WhenBuilder(self._branches + (to_expr(condition),))

    def otherwise(self, value) -> Expr:
        return When(self._branches, to_expr(value))


class StringFunctions(StringLibrary):
    def __init__(self, expr: Expr):
        self._expr = expr

    def contains(self, pattern: str, literal: bool = False) -> Expr:
        return Call("str.contains", (self._expr,), (pattern, literal))
    def starts_with(self, prefix: str) -> Expr: return Call("str.starts_with", (self._expr,), (prefix,))
    def ends_with(self, suffix: str) -> Expr: return Call("str.ends_with", (self._expr,), (suffix,))
    def lower(self) -> Expr: return Call("str.lower", (self._expr,))
    def upper(self) -> Expr: return Call("str.upper", (self._expr,))
    def len(self) -> Expr: return Call("str.len", (self._expr,))
    def concat(self, *others) -> Expr:
        """This string followed by the others (SQL's ||): null if any part is null."""
        return Call("str.concat", (self._expr,) + tuple(to_expr(o) for o in others))

    def slice(self, offset: int, length: int | None = None) -> Expr:
        return Call("str.slice", (self._expr,), (offset, length))

    def like(self, pattern: str, case_insensitive: bool = False) -> Expr:
        """SQL LIKE: `%` matches any run of characters, `_` any one character, and the whole string must match."""
        if not isinstance(pattern, str):
            raise ExpressionTypeError(f"str.like() takes a pattern string such as 'ab%', got {pattern!r}.")
        return Call("str.like", (self._expr,), (pattern, bool(case_insensitive)))

    def replace(self, pattern: str, value: str, literal: bool = True) -> Expr:
        """Replace every occurrence of `pattern` (a regex when literal=False)."""
        return Call("str.replace", (self._expr,), (pattern, value, literal))


TRUNCATE_UNITS = {"s", "m", "h", "d", "w", "mo", "q", "y"}
OFFSET_SPAN = re.compile(r"^-?(\d+(ns|us|ms|s|m|h|d|w|mo|q|y))+$")


class TemporalFunctions(TemporalLibrary):
    def __init__(self, expr: Expr):
        self._expr = expr

    def year(self) -> Expr: return Call("dt.year", (self._expr,))
    def month(self) -> Expr: return Call("dt.month", (self._expr,))
    def day(self) -> Expr: return Call("dt.day", (self._expr,))
    def hour(self) -> Expr: return Call("dt.hour", (self._expr,))

    def offset_by(self, by: str) -> Expr:
        """Shift by a calendar span: "3mo", "-1y", "90d", "2h" (a month added to Jan 31 gives the last day of
        February, as in SQL's date + INTERVAL)."""
        if not isinstance(by, str) or not OFFSET_SPAN.match(by):
            raise ExpressionTypeError(
                f"dt.offset_by({by!r}): unknown span. Use a signed count and a unit, e.g. '3mo', '-1y', '90d' "
                f"(units ns, us, ms, s, m, h, d, w, mo, q, y).")
        return Call("dt.offset_by", (self._expr,), (by,))

    def truncate(self, every: str) -> Expr:
        """Truncate to a calendar unit: "1h", "1d", "1w", "1mo", "1y" (Polars duration syntax)."""
        unit = every.lstrip("0123456789")
        if not every or unit not in TRUNCATE_UNITS:
            raise ExpressionTypeError(
                f"dt.truncate({every!r}): unknown interval. Use a count and a unit such as "
                f"'1h', '15m', '1d', '1w', '1mo', '1q' or '1y'."
            )
        return Call("dt.truncate", (self._expr,), (every,))


def col(name: str) -> Column:
    """A reference to the column `name` of the input."""
    if not isinstance(name, str):
        raise ExpressionTypeError(f"col() takes a column name (a str), got {name!r}.")
    return Column(name)


def lit(value) -> Literal:
    """A constant value."""
    return Literal(value)


def when(condition: Expr) -> WhenBuilder:
    """Start a conditional: `when(cond).then(value).otherwise(default)`."""
    return WhenBuilder((to_expr(condition),))


# ---------------------------------------------------------------- library functions that start from no expression

def coalesce(*values) -> Expr:
    """The first non-null of `values` per row (SQL COALESCE); plain values become literals."""
    if not values:
        raise ExpressionTypeError("coalesce() needs at least one expression, e.g. coalesce(col('a'), col('b'), 0).")
    return to_expr(values[0]).call_function("coalesce", values[1:])


def to_expr(value) -> Expr:
    if isinstance(value, Expr):
        return value
    if isinstance(value, (WhenBuilder, WhenThen)):
        raise ExpressionTypeError("A when(...) chain must end with .otherwise(value) before it is used.")
    return Literal(value)


def walk(expr: Expr):
    """Every node of `expr`, parents before children."""
    yield expr
    for child in expr.children:
        yield from walk(child)


def columns_of(expr: Expr) -> set[str]:
    return {node.name for node in walk(expr) if isinstance(node, Column)}


def transform(expr: Expr, fn: Callable[[Expr], Expr], descend: Callable[[Expr], bool] = lambda e: True) -> Expr:
    """Rebuild `expr` bottom-up, replacing each node by `fn(node)`; nodes that `descend` rejects
    are handed to `fn` whole, their insides untouched."""
    children = expr.children if descend(expr) else ()
    if children:
        new_children = tuple(transform(c, fn, descend) for c in children)
        if any(n is not o for n, o in zip(new_children, children)):
            expr = expr.with_children(new_children)
    return fn(expr)


def split_conjuncts(expr: Expr) -> list[Expr]:
    if isinstance(expr, BinaryOp) and expr.op == "&":
        return split_conjuncts(expr.left) + split_conjuncts(expr.right)
    return [expr]


def conjoin(exprs: Iterable[Expr]) -> Expr | None:
    result = None
    for e in exprs:
        result = e if result is None else BinaryOp("&", result, e)
    return result


def unalias(expr: Expr) -> Expr:
    while isinstance(expr, Alias):
        expr = expr.expr
    return expr

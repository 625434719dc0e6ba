"""SQL scalar expressions to sluice expressions.

`ExpressionTranslator` turns one sqlglot expression into a sluice `Expr`. Column references go
through a resolver the caller gives (the columns in scope of one SELECT), and nodes the caller
has already planned (an aggregate computed by a group-by, a scalar subquery joined in, a
group-by key) through its `replaced` map, keyed by the node's SQL text. Arithmetic on
constants is done here, exactly (dates plus intervals, decimal literals), so the plan compares
columns with plain literals that scans can prune with.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Callable

import pyarrow as pa
from sqlglot import exp

from ..expr.tree import Expr, Literal, lit, when
from .front import Query

AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Stddev, exp.StddevSamp, exp.Variance,
              exp.VariancePop, exp.StddevPop, exp.Median)

_CALENDAR_UNITS = {"YEAR": "y", "QUARTER": "q", "MONTH": "mo", "WEEK": "w", "DAY": "d", "HOUR": "h", "MINUTE": "m",
                   "SECOND": "s"}
_EXTRACT = {"YEAR": "year", "MONTH": "month", "DAY": "day", "HOUR": "hour"}

_SQL_TYPES = {
    exp.DataType.Type.BOOLEAN: pa.bool_(), exp.DataType.Type.TINYINT: pa.int8(), exp.DataType.Type.SMALLINT: pa.int16(),
    exp.DataType.Type.INT: pa.int32(), exp.DataType.Type.BIGINT: pa.int64(), exp.DataType.Type.FLOAT: pa.float32(),
    exp.DataType.Type.DOUBLE: pa.float64(), exp.DataType.Type.VARCHAR: pa.string(), exp.DataType.Type.TEXT: pa.string(),
    exp.DataType.Type.CHAR: pa.string(), exp.DataType.Type.DATE: pa.date32(),
    exp.DataType.Type.TIMESTAMP: pa.timestamp("us"),
}


def sql_key(node: exp.Expression) -> str:
    """A node's identity for matching (a GROUP BY expression repeated in SELECT, one aggregate used twice)."""
    return node.sql(dialect="duckdb")


def aggregates_found(node: exp.Expression) -> list[exp.Expression]:
    """The aggregate calls of a node, outside any subquery or window."""
    found = []

    def visit(n):
        if isinstance(n, (exp.Subquery, exp.Select, exp.Window)) and n is not node:
            return
        if isinstance(n, AGGREGATES):
            found.append(n)
            return
        for child in n.iter_expressions():
            visit(child)

    visit(node)
    return found


def arrow_type(node: exp.DataType, query: Query) -> pa.DataType:
    if node.this == exp.DataType.Type.DECIMAL:
        params = [int(p.this.this) for p in node.expressions]
        precision, scale = (params + [18, 3])[:2] if params else (18, 3)
        return pa.decimal128(precision, scale if len(params) > 1 else 0 if params else 3)
    found = _SQL_TYPES.get(node.this)
    if found is None:
        raise query.error(f"CAST to {node.sql()} is not supported", node,
                          "Use BOOLEAN, an integer type, FLOAT, DOUBLE, DECIMAL(p, s), VARCHAR, DATE or TIMESTAMP.")
    return found


def number(text: str):
    if any(ch in text for ch in "eE"):
        return float(text)
    if "." in text:
        return decimal.Decimal(text)
    return int(text)


def add_interval(value, count: int, unit: str):
    """A date or timestamp constant plus `count` calendar units, as SQL engines do (Jan 31 + 1 month = Feb 28)."""
    if unit in ("y", "q", "mo"):
        months = count * {"y": 12, "q": 3, "mo": 1}[unit]
        total = value.year * 12 + value.month - 1 + months
        year, month = divmod(total, 12)
        month += 1
        for day in range(value.day, 0, -1):
            try:
                return value.replace(year=year, month=month, day=day)
            except ValueError:
                continue
    seconds = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}[unit] * count
    if isinstance(value, datetime.datetime):
        return value + datetime.timedelta(seconds=seconds)
    if seconds % 86400 == 0:
        return value + datetime.timedelta(days=seconds // 86400)
    return datetime.datetime.combine(value, datetime.time()) + datetime.timedelta(seconds=seconds)


class ExpressionTranslator:
    """Translates the scalar expressions of one scope; see the module docstring."""

    def __init__(self, query: Query, resolve: Callable[[exp.Column], Expr], replaced: dict[str, Expr] | None = None,
                 context: str = "this query"):
        self.query = query
        self.resolve = resolve
        self.replaced = replaced or {}
        self.context = context

    def __call__(self, node: exp.Expression) -> Expr:
        if self.replaced:
            found = self.replaced.get(sql_key(node))
            if found is not None:
                return found
        method = getattr(self, f"on_{type(node).__name__.lower()}", None)
        if method is None:
            return self.unsupported(node)
        return method(node)

    def unsupported(self, node: exp.Expression) -> Expr:
        if isinstance(node, AGGREGATES):
            raise self.query.error(f"Aggregate {node.sql()} is not allowed in {self.context}", node,
                                   "Aggregates belong in SELECT, HAVING or ORDER BY of a query with GROUP BY "
                                   "(or of a one-row aggregate query).")
        if isinstance(node, exp.Func):
            name = node.sql_name() if not isinstance(node, exp.Anonymous) else node.name
            raise self.query.error(f"Unknown or unsupported function {name.upper()}()", node,
                                   "sluice's SQL supports the common scalar functions (UPPER, LOWER, LENGTH, "
                                   "SUBSTRING, COALESCE, ABS, EXTRACT...), CASE, CAST and the aggregates.")
        if isinstance(node, (exp.Subquery, exp.Exists)):
            raise self.query.error("A subquery is not supported in this place", node,
                                   "Use subqueries in FROM, in WHERE/HAVING conditions, or as a scalar value.")
        raise self.query.error(f"{type(node).__name__} expressions are not supported ({node.sql()})", node)

    # ------------------------------------------------------------ leaves

    def on_column(self, node: exp.Column) -> Expr:
        return self.resolve(node)

    def on_paren(self, node: exp.Paren) -> Expr:
        return self(node.this)

    def on_literal(self, node: exp.Literal) -> Expr:
        return lit(node.this if node.is_string else number(node.this))

    def on_boolean(self, node: exp.Boolean) -> Expr:
        return lit(bool(node.this))

    def on_null(self, node: exp.Null) -> Expr:
        return lit(None)

    def on_cast(self, node: exp.Cast) -> Expr:
        target = arrow_type(node.to, self.query)
        inner = self(node.this)
        if isinstance(inner, Literal) and isinstance(inner.value, str) and pa.types.is_date(target):
            try:
                return lit(datetime.date.fromisoformat(inner.value))
            except ValueError:
                raise self.query.error(f"{inner.value!r} is not a date", node, "Write dates as 'YYYY-MM-DD'.") from None
        if isinstance(inner, Literal) and isinstance(inner.value, str) and pa.types.is_timestamp(target):
            try:
                return lit(datetime.datetime.fromisoformat(inner.value))
            except ValueError:
                raise self.query.error(f"{inner.value!r} is not a timestamp", node,
                                       "Write timestamps as 'YYYY-MM-DD HH:MM:SS'.") from None
        return inner.cast(target)

    on_trycast = on_cast

    # ------------------------------------------------------------ operators

    def binary(self, node, op: Callable[[Expr, Expr], Expr], fold: Callable | None = None) -> Expr:
        left, right = self(node.this), self(node.expression)
        if fold is not None and isinstance(left, Literal) and isinstance(right, Literal) and \
                isinstance(left.value, (int, decimal.Decimal)) and isinstance(right.value, (int, decimal.Decimal)) \
                and not isinstance(left.value, bool) and not isinstance(right.value, bool):
            return lit(fold(left.value, right.value))
        return op(left, right)

    def interval_arithmetic(self, node, sign: int) -> Expr | None:
        interval = node.expression if isinstance(node.expression, exp.Interval) else None
        if interval is None:
            return None
        count, unit = self.interval(interval)
        base = self(node.this)
        if isinstance(base, Literal) and isinstance(base.value, (datetime.date, datetime.datetime)):
            return lit(add_interval(base.value, sign * count, unit))
        return base.dt.offset_by(f"{sign * count}{unit}")

    def interval(self, node: exp.Interval) -> tuple[int, str]:
        text = node.this.name if isinstance(node.this, exp.Literal) else None
        unit_node = node.args.get("unit")
        # "INTERVAL '90' DAY (3)" (the precision form of the TPC-H texts) parses as a function Day(3)
        unit = "" if unit_node is None else unit_node.name if isinstance(unit_node, exp.Var) else type(unit_node).__name__
        parts = str(text).split() if text is not None else []
        if len(parts) == 2 and not unit:
            text, unit = parts
        unit = unit.upper().rstrip("S") if unit else ""
        try:
            count = int(str(text))
        except ValueError:
            count = None
        if count is None or unit not in _CALENDAR_UNITS:
            raise self.query.error(f"Cannot read the interval {node.sql()}", node,
                                   "Write e.g. INTERVAL '3' MONTH, INTERVAL '90' DAY or INTERVAL '1' YEAR.")
        return count, _CALENDAR_UNITS[unit]

    def on_add(self, node):
        shifted = self.interval_arithmetic(node, 1)
        return shifted if shifted is not None else self.binary(node, lambda a, b: a + b, lambda a, b: a + b)

    def on_sub(self, node):
        shifted = self.interval_arithmetic(node, -1)
        return shifted if shifted is not None else self.binary(node, lambda a, b: a - b, lambda a, b: a - b)

    def on_mul(self, node): return self.binary(node, lambda a, b: a * b, lambda a, b: a * b)
    def on_div(self, node): return self.binary(node, lambda a, b: a / b)
    def on_mod(self, node): return self.binary(node, lambda a, b: a % b)
    def on_eq(self, node): return self.binary(node, lambda a, b: a == b)
    def on_neq(self, node): return self.binary(node, lambda a, b: a != b)
    def on_gt(self, node): return self.binary(node, lambda a, b: a > b)
    def on_gte(self, node): return self.binary(node, lambda a, b: a >= b)
    def on_lt(self, node): return self.binary(node, lambda a, b: a < b)
    def on_lte(self, node): return self.binary(node, lambda a, b: a <= b)
    def on_and(self, node): return self.binary(node, lambda a, b: a & b)
    def on_or(self, node): return self.binary(node, lambda a, b: a | b)

    def on_not(self, node): return ~self(node.this)

    def on_neg(self, node):
        inner = self(node.this)
        if isinstance(inner, Literal) and isinstance(inner.value, (int, float, decimal.Decimal)):
            return lit(-inner.value)
        return -inner

    def on_is(self, node: exp.Is) -> Expr:
        if not isinstance(node.expression, exp.Null):
            raise self.query.error(f"IS {node.expression.sql()} is not supported", node, "Use IS NULL or IS NOT NULL.")
        return self(node.this).is_null()

    def on_like(self, node: exp.Like) -> Expr:
        return self.like(node, False)

    def on_ilike(self, node: exp.ILike) -> Expr:
        return self.like(node, True)

    def like(self, node, case_insensitive: bool) -> Expr:
        pattern = self(node.expression)
        if not isinstance(pattern, Literal) or not isinstance(pattern.value, str):
            raise self.query.error("LIKE needs a constant pattern", node.expression, "Write the pattern as a string.")
        if node.args.get("escape") is not None:
            raise self.query.error("LIKE ... ESCAPE is not supported", node)
        result = self(node.this).str.like(pattern.value, case_insensitive)
        return ~result if node.args.get("negate") else result

    def on_in(self, node: exp.In) -> Expr:
        if node.args.get("query") is not None:
            raise self.query.error("IN (subquery) is only supported as a condition of WHERE or HAVING", node,
                                   "Move it to the WHERE clause, or join the subquery.")
        subject = self(node.this)
        values = [self(v) for v in node.expressions]
        if all(isinstance(v, Literal) for v in values):
            return subject.is_in([v.value for v in values])
        result = None
        for value in values:
            test = subject == value
            result = test if result is None else result | test
        return result

    def on_between(self, node: exp.Between) -> Expr:
        return self(node.this).between(self(node.args["low"]), self(node.args["high"]))

    def on_case(self, node: exp.Case) -> Expr:
        subject = self(node.this) if node.this is not None else None
        chain = None
        for branch in node.args.get("ifs") or []:
            condition = self(branch.this)
            if subject is not None:
                condition = subject == condition
            chain = when(condition) if chain is None else chain.when(condition)
            chain = chain.then(self(branch.args["true"]))
        default = node.args.get("default")
        return chain.otherwise(self(default) if default is not None else lit(None))

    def on_if(self, node: exp.If) -> Expr:
        false = node.args.get("false")
        return when(self(node.this)).then(self(node.args["true"])).otherwise(
            self(false) if false is not None else lit(None))

    # ------------------------------------------------------------ functions

    def on_extract(self, node: exp.Extract) -> Expr:
        part = node.this.name.upper()
        if part not in _EXTRACT:
            raise self.query.error(f"EXTRACT({part} ...) is not supported", node, "Use YEAR, MONTH, DAY or HOUR.")
        return getattr(self(node.expression).dt, _EXTRACT[part])()

    def on_year(self, node): return self(node.this).dt.year()
    def on_month(self, node): return self(node.this).dt.month()
    def on_day(self, node): return self(node.this).dt.day()

    def on_substring(self, node: exp.Substring) -> Expr:
        start = self(node.args["start"]) if node.args.get("start") is not None else lit(1)
        length = self(node.args["length"]) if node.args.get("length") is not None else None
        if not isinstance(start, Literal) or (length is not None and not isinstance(length, Literal)):
            raise self.query.error("SUBSTRING needs constant start and length", node)
        offset = start.value - 1 if start.value > 0 else start.value
        return self(node.this).str.slice(offset, None if length is None else length.value)

    def on_datetrunc(self, node) -> Expr:
        unit = node.args.get("unit")
        name = (unit.name if unit is not None else "").upper()
        if name not in _CALENDAR_UNITS or name == "SECOND":
            raise self.query.error(f"DATE_TRUNC to {name or '?'} is not supported", node,
                                   "Truncate to YEAR, QUARTER, MONTH, WEEK, DAY, HOUR or MINUTE.")
        return self(node.this).dt.truncate(f"1{_CALENDAR_UNITS[name]}")

    on_timestamptrunc = on_datetrunc

    def on_upper(self, node): return self(node.this).str.upper()
    def on_lower(self, node): return self(node.this).str.lower()
    def on_length(self, node): return self(node.this).str.len()

    def on_abs(self, node): return self(node.this).abs()

    def on_round(self, node: exp.Round) -> Expr:
        decimals = self(node.args["decimals"]) if node.args.get("decimals") is not None else lit(0)
        if not isinstance(decimals, Literal) or not isinstance(decimals.value, int):
            raise self.query.error("ROUND needs a constant number of decimals", node)
        return self(node.this).round(decimals.value)

    def on_dpipe(self, node: exp.DPipe) -> Expr:
        return self(node.this).str.concat(self(node.expression))

    def on_concat(self, node: exp.Concat) -> Expr:
        parts = [self(p).fill_null("") for p in node.expressions]  # CONCAT() reads a null as '', unlike ||
        return parts[0].str.concat(*parts[1:])

    def on_coalesce(self, node: exp.Coalesce) -> Expr:
        result = self(node.this)
        for other in node.expressions:
            result = result.fill_null(self(other))
        return result

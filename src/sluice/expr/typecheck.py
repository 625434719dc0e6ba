"""Plan-time checks of expressions against a schema, and literal coercion.

`check_expression` walks an expression and raises a SluiceError at the first unknown column
or type misuse, naming the column, close matches and the schema. `coerce_literals` gives a
literal the type of the column it is compared with (ISO strings for dates and timestamps,
numbers for decimals), so `col("day") >= "2026-01-01"` means what it says.
"""

from __future__ import annotations

import datetime
import decimal

import pyarrow as pa

from ..errors import ExpressionTypeError, column_not_found, format_schema
from .kinds import BOOL, LIST, NULL, NUMERIC, OTHER, STRING, STRUCT, TEMPORAL
from .library_check import ELEMENT, FIELD, LIBRARY_SIGNATURES, LIST_PRESERVING, SAME
from .tree import (
    COMPARISON_OPS, Alias, BinaryOp, Call, Column, Expr, Literal, UnaryOp, When, columns_of, transform, walk,
)


def kind_of_type(dtype: pa.DataType) -> str:
    if pa.types.is_dictionary(dtype):
        return kind_of_type(dtype.value_type)
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return NUMERIC
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return STRING
    if pa.types.is_boolean(dtype):
        return BOOL
    if pa.types.is_temporal(dtype):
        return TEMPORAL
    if pa.types.is_null(dtype):
        return NULL
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_list_view(dtype) \
            or pa.types.is_large_list_view(dtype) or pa.types.is_fixed_size_list(dtype):
        return LIST
    if pa.types.is_struct(dtype):
        return STRUCT
    return OTHER


def _kind_of_value(value) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float, decimal.Decimal)):
        return NUMERIC
    if isinstance(value, str):
        return STRING
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time, datetime.timedelta)):
        return TEMPORAL
    return OTHER


_ARITHMETIC = {"+", "-", "*", "/", "//", "%", "**"}

_STRING_RESULT = {"str.lower": STRING, "str.upper": STRING, "str.slice": STRING, "str.replace": STRING,
                  "str.contains": BOOL, "str.like": BOOL, "str.starts_with": BOOL, "str.ends_with": BOOL, "str.len": NUMERIC}
_TEMPORAL_RESULT = {"dt.year": NUMERIC, "dt.month": NUMERIC, "dt.day": NUMERIC, "dt.hour": NUMERIC,
                    "dt.truncate": TEMPORAL, "dt.offset_by": TEMPORAL}


class _Checker:
    """Walks an expression against a schema and raises a SluiceError at the first misuse."""

    def __init__(self, schema: pa.Schema, context: str):
        self.schema = schema
        self.context = context

    def fail(self, expr: Expr, problem: str, fix: str) -> ExpressionTypeError:
        return ExpressionTypeError(
            f"{problem} in `{expr!r}`{self.context}. {fix}\n  The input has these columns:\n"
            f"{format_schema(self.schema)}"
        )

    def describe(self, expr: Expr, kind: str) -> str:
        if isinstance(expr, Column):
            return f"column {expr.name!r} is {self.schema.field(expr.name).type}"
        return f"`{expr!r}` is {kind}"

    def label(self, expr: Expr, kind: str) -> str:
        if isinstance(expr, Column):
            return f"column {expr.name!r} ({self.schema.field(expr.name).type})"
        return f"`{expr!r}` ({kind})"

    def kind(self, expr: Expr) -> str:
        if isinstance(expr, Column):
            if expr.name not in self.schema.names:
                raise column_not_found(expr.name, self.schema, self.context.strip(" ,"))
            return kind_of_type(self.schema.field(expr.name).type)
        if isinstance(expr, Literal):
            return _kind_of_value(expr.value)
        if isinstance(expr, Alias):
            return self.kind(expr.expr)
        if isinstance(expr, BinaryOp):
            return self._binary(expr)
        if isinstance(expr, UnaryOp):
            inner = self.kind(expr.operand)
            if expr.op == "not":
                self.require(expr, expr.operand, inner, {BOOL}, "~ needs a boolean operand")
                return BOOL
            if expr.op == "neg":
                self.require(expr, expr.operand, inner, {NUMERIC}, "unary minus needs a number")
                return NUMERIC
            return BOOL
        if isinstance(expr, Call):
            return self._call(expr)
        if isinstance(expr, When):
            for cond in expr.branches[0::2]:
                self.require(expr, cond, self.kind(cond), {BOOL}, "when() needs a boolean condition")
            kinds = {self.kind(v) for v in expr.branches[1::2] + (expr.default,)} - {NULL}
            return kinds.pop() if len(kinds) == 1 else OTHER
        return OTHER

    def require(self, whole: Expr, part: Expr, kind: str, allowed: set[str], problem: str):
        if kind not in allowed and kind not in (NULL, OTHER):
            fix = {STRING: "Cast it first, e.g. .cast('string').", NUMERIC: "Cast it first, e.g. .cast('float64').",
                   BOOL: "Compare it to something to get a boolean, e.g. col('x') > 0.",
                   TEMPORAL: "Cast it to a date or timestamp first, e.g. .cast('timestamp[us]').",
                   LIST: "Make a list first, e.g. col('s').str.split(',')."}
            needed = sorted(allowed)[0]
            raise self.fail(whole, f"{problem}, but {self.describe(part, kind)}", fix.get(needed, ""))

    def _binary(self, expr: BinaryOp) -> str:
        left, right = self.kind(expr.left), self.kind(expr.right)
        if expr.op in ("&", "|"):
            for part, kind in ((expr.left, left), (expr.right, right)):
                self.require(expr, part, kind, {BOOL}, f"{expr.op} needs boolean operands")
            return BOOL
        if expr.op in _ARITHMETIC:
            allowed = {NUMERIC, TEMPORAL} if expr.op in ("+", "-") else {NUMERIC}
            for part, kind in ((expr.left, left), (expr.right, right)):
                self.require(expr, part, kind, allowed, f"operator {expr.op} needs numbers")
            return TEMPORAL if TEMPORAL in (left, right) and expr.op == "+" else (
                NUMERIC if left != TEMPORAL or right != TEMPORAL else OTHER)
        if expr.op in COMPARISON_OPS:
            comparable = {left, right} - {NULL, OTHER}
            if len(comparable) > 1 and comparable != {TEMPORAL, STRING}:
                raise self.fail(
                    expr, f"cannot compare {self.label(expr.left, left)} with {self.label(expr.right, right)}",
                    "Cast one side so both have the same type.")
            return BOOL
        return OTHER

    def _call(self, expr: Call) -> str:
        kinds = [self.kind(a) for a in expr.args]
        first = kinds[0]
        if expr.fn in LIBRARY_SIGNATURES or expr.fn in ("coalesce", "eq_missing", "ne_missing", "replace"):
            return self._library_call(expr, kinds)
        if expr.fn in _STRING_RESULT:
            self.require(expr, expr.args[0], first, {STRING}, f"{expr.fn}() needs a string")
            return _STRING_RESULT[expr.fn]
        if expr.fn in _TEMPORAL_RESULT:
            self.require(expr, expr.args[0], first, {TEMPORAL}, f"{expr.fn}() needs a date or timestamp")
            return _TEMPORAL_RESULT[expr.fn]
        if expr.fn in ("is_in", "between"):
            return BOOL
        if expr.fn in ("abs", "round"):
            self.require(expr, expr.args[0], first, {NUMERIC}, f"{expr.fn}() needs a number")
            return NUMERIC
        if expr.fn == "str.concat":
            for arg, kind in zip(expr.args, kinds):
                self.require(expr, arg, kind, {STRING}, "str.concat() joins strings")
            return STRING
        if expr.fn == "hash":
            return NUMERIC
        if expr.fn == "cast":
            return kind_of_type(expr.params[0])
        return first


    # ---------------------------------------------------------------- the function library (library.py)

    def _library_call(self, expr: Call, kinds: list[str]) -> str:
        if expr.fn == "coalesce":
            known = {k for k in kinds if k not in (NULL, OTHER)}
            if len(known) > 1:
                parts = ", ".join(self.label(a, k) for a, k in zip(expr.args, kinds))
                raise self.fail(expr, f"coalesce() needs values of one type, but gets {parts}",
                                "Cast them to one type first, e.g. .cast('string').")
            return known.pop() if known else kinds[0]
        if expr.fn in ("eq_missing", "ne_missing"):
            comparable = set(kinds) - {NULL, OTHER}
            if len(comparable) > 1 and comparable != {TEMPORAL, STRING}:
                raise self.fail(expr, f"cannot compare {self.label(expr.args[0], kinds[0])} with "
                                      f"{self.label(expr.args[1], kinds[1])}",
                                "Cast one side so both have the same type.")
            return BOOL
        if expr.fn == "replace":
            for old, new in expr.params[0]:
                for value in (old, new):
                    kind = _kind_of_value(value)
                    if kind not in (kinds[0], NULL, OTHER) and kinds[0] not in (NULL, OTHER):
                        raise self.fail(expr, f"replace() maps {self.describe(expr.args[0], kinds[0])} but is given "
                                              f"{value!r} ({kind})",
                                        "Give values of the column's kind, or cast the column first.")
            return kinds[0]
        sig = LIBRARY_SIGNATURES[expr.fn]
        first = kinds[0]
        self.require(expr, expr.args[0], first, set(sig.needs), f"{expr.fn}() needs {sig.what}")
        if sig.others is not None:
            for arg, kind in zip(expr.args[1:], kinds[1:]):
                self.require(expr, arg, kind, set(sig.others),
                             f"the other arguments of {expr.fn}() must be {_plural(sig.others)}")
        dtype = self.arrow_type(expr.args[0])
        if sig.duration is not None and dtype is not None and pa.types.is_duration(dtype) != sig.duration:
            fix = ("Subtract two timestamps to get one, e.g. (col('end') - col('start')).dt.total_days()."
                   if sig.duration else "Add it to a date or timestamp first.")
            raise self.fail(expr, f"{expr.fn}() needs {sig.what}, but {self.describe(expr.args[0], first)}", fix)
        if expr.fn == "dt.convert_time_zone" and dtype is not None and getattr(dtype, "tz", "") is None:
            raise self.fail(expr, f"dt.convert_time_zone() needs a timestamp with a time zone, but "
                                  f"{self.describe(expr.args[0], first)}",
                            "Say which zone its times are in first, e.g. .dt.replace_time_zone('UTC')"
                            ".dt.convert_time_zone('Europe/Paris').")
        element = self.element_kind(expr.args[0])
        if sig.elements is not None and element not in sig.elements and element not in (NULL, OTHER):
            raise self.fail(expr, f"{expr.fn}() needs a list of {_plural(sig.elements)}, but "
                                  f"{self.describe(expr.args[0], first)}",
                            "Turn the elements into the right type first, e.g. .cast(pa.list_(pa.string())).")
        if sig.result == SAME:
            return first
        if sig.result == ELEMENT:
            return element
        if sig.result == FIELD:
            return self.struct_field_kind(expr)
        return sig.result

    def arrow_type(self, expr: Expr) -> pa.DataType | None:
        """The Arrow type of a column, or of the duration two columns' difference is; None when not known."""
        if isinstance(expr, Alias):
            return self.arrow_type(expr.expr)
        if isinstance(expr, Column) and expr.name in self.schema.names:
            return self.schema.field(expr.name).type
        if isinstance(expr, BinaryOp) and expr.op == "-":
            left, right = self.arrow_type(expr.left), self.arrow_type(expr.right)
            if left is not None and right is not None and pa.types.is_temporal(left) and pa.types.is_temporal(right) \
                    and not pa.types.is_duration(left):
                return pa.duration("us")
        return None

    def element_kind(self, expr: Expr) -> str:
        dtype = self.arrow_type(expr)
        if dtype is not None and kind_of_type(dtype) == LIST:
            return kind_of_type(dtype.value_type)
        if isinstance(expr, Call) and expr.fn in ("str.split", "str.extract_all"):
            return STRING
        if isinstance(expr, Call) and expr.fn in LIST_PRESERVING:
            return self.element_kind(expr.args[0])
        return OTHER

    def struct_field_kind(self, expr: Call) -> str:
        dtype = self.arrow_type(expr.args[0])
        if dtype is None or not pa.types.is_struct(dtype):
            return OTHER
        name = expr.params[0]
        names = [dtype.field(i).name for i in range(dtype.num_fields)]
        if name not in names:
            raise self.fail(expr, f"struct.field({name!r}): {self.describe(expr.args[0], STRUCT)}, which has no "
                                  f"field {name!r}", f"Its fields are: {', '.join(map(repr, names))}.")
        return kind_of_type(dtype.field(name).type)


def _plural(kinds: frozenset[str]) -> str:
    return "strings" if STRING in kinds else "booleans" if BOOL in kinds else "numbers"


def check_expression(expr: Expr, schema: pa.Schema, context: str = "") -> str:
    """Raise a SluiceError if `expr` names an unknown column or misuses a type; return its kind."""
    where = f", {context}" if context else ""
    return _Checker(schema, where).kind(expr)


# ---------------------------------------------------------------- literal coercion

def _coercible_column_type(expr: Expr, schema: pa.Schema) -> pa.DataType | None:
    if isinstance(expr, Column) and expr.name in schema.names:
        dtype = schema.field(expr.name).type
        if pa.types.is_date(dtype) or pa.types.is_timestamp(dtype) or pa.types.is_decimal(dtype):
            return dtype
    return None


def _parse_temporal(text: str, dtype: pa.DataType, where: Expr):
    try:
        if pa.types.is_date(dtype):
            return datetime.date.fromisoformat(text)
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ExpressionTypeError(
            f"{text!r} in `{where!r}` is not a {'date' if pa.types.is_date(dtype) else 'timestamp'}. "
            f"Write it in ISO 8601, e.g. '2026-01-31' or '2026-01-31T13:45:00'."
        ) from None
    if dtype.tz is not None and value.tzinfo is None:
        from zoneinfo import ZoneInfo
        value = value.replace(tzinfo=ZoneInfo(dtype.tz))
    elif dtype.tz is None and value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def _coerce_value(value, dtype: pa.DataType, where: Expr):
    """The literal as the column's type: ISO strings for dates/timestamps, numbers for decimals."""
    if pa.types.is_decimal(dtype):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return decimal.Decimal(str(value))
        return value
    return _parse_temporal(value, dtype, where) if isinstance(value, str) else value


def _coerce(node: Expr, schema: pa.Schema) -> Expr:
    def coerced(arg: Expr, dtype) -> Expr:
        if isinstance(arg, Literal):
            value = _coerce_value(arg.value, dtype, node)
            return arg if value is arg.value else Literal(value)
        return arg

    if isinstance(node, BinaryOp) and node.op in COMPARISON_OPS:
        left_type = _coercible_column_type(node.left, schema)
        if left_type is not None:
            return BinaryOp(node.op, node.left, coerced(node.right, left_type))
        right_type = _coercible_column_type(node.right, schema)
        if right_type is not None:
            return BinaryOp(node.op, coerced(node.left, right_type), node.right)
    if isinstance(node, Call) and node.fn in ("between", "is_in"):
        dtype = _coercible_column_type(node.args[0], schema)
        if dtype is not None and node.fn == "between":
            return Call(node.fn, (node.args[0],) + tuple(coerced(a, dtype) for a in node.args[1:]), node.params)
        if dtype is not None:
            return Call(node.fn, node.args, (tuple(_coerce_value(v, dtype, node) for v in node.params[0]),))
    return node


def coerce_literals(expr: Expr, schema: pa.Schema | None) -> Expr:
    """Give literals compared with date, timestamp or decimal columns the column's type."""
    if schema is None:
        return expr
    return transform(expr, lambda node: _coerce(node, schema))


# ---------------------------------------------------------------- SQL decimal arithmetic

def _polars_dtype(expr: Expr, frame) -> object | None:
    from .compile import to_polars
    try:
        return frame.select(to_polars(expr)).collect_schema().dtypes()[0]
    except Exception:
        return None


def sql_decimal_arithmetic(expr: Expr, schema: pa.Schema | None) -> Expr:
    """Make decimal arithmetic follow SQL: exact products, and floating-point quotients.

    Polars gives `decimal(p1, s1) * decimal(p2, s2)` the larger of the two scales, which rounds
    money (10.01 * 0.07 = 0.70, not 0.7007); SQL engines give it scale s1 + s2. And a decimal
    quotient keeps a decimal scale in Polars, where SQL engines return a double.
    """
    if schema is None or not any(isinstance(node, BinaryOp) and node.op in ("*", "/") for node in walk(expr)):
        return expr
    used = columns_of(expr)
    schema = pa.schema([field for field in schema if field.name in used])
    if not any(pa.types.is_decimal(f.type) for f in schema):
        return expr
    import polars as pl

    from .types import arrow_to_polars
    frame = arrow_to_polars(schema.empty_table()).lazy()

    def fix(node: Expr) -> Expr:
        if not isinstance(node, BinaryOp) or node.op not in ("*", "/"):
            return node
        left, right = _polars_dtype(node.left, frame), _polars_dtype(node.right, frame)
        left_dec, right_dec = isinstance(left, pl.Decimal), isinstance(right, pl.Decimal)
        if node.op == "/" and (left_dec or right_dec):
            as_float = lambda e, dec: Call("cast", (e,), (pa.float64(),)) if dec else e  # noqa: E731
            return BinaryOp("/", as_float(node.left, left_dec), as_float(node.right, right_dec))
        if node.op == "*" and left_dec and right_dec and left.scale + right.scale <= 38:
            widened = Call("cast", (node.left,), (pa.decimal128(38, left.scale + right.scale),))
            return BinaryOp("*", widened, node.right)
        return node

    return transform(expr, fix)


def resolve_expression(expr: Expr, schema: pa.Schema | None) -> Expr:
    """Everything a user expression needs before it joins a plan: typed literals, SQL decimals."""
    return sql_decimal_arithmetic(coerce_literals(expr, schema), schema)

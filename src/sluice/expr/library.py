"""The expression function library: math, NaN handling, more string and temporal functions, lists, structs.

Kept apart from `tree` so the node classes stay small: `Expr` inherits `ExprFunctions`, and the `.str`
and `.dt` namespaces inherit `StringLibrary` and `TemporalLibrary`. Every method here only builds a
`Call` node through `Expr.call_function`; `library_compile` lowers each one to Polars and `library_check`
gives its result kind and rejects wrong argument kinds when the plan is built.

Names are Polars' names (the table in docs/expressions.md lists them). Where Polars and SQL (DuckDB)
define a function differently, each docstring says which one sluice follows.
"""

from __future__ import annotations

import math
import re

import pyarrow as pa

from ..errors import ExpressionTypeError
from .types import to_arrow_type

EPOCH_UNITS = ("s", "ms", "us", "ns", "d")


def _integer(value, what: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" of at least {minimum}"
        raise ExpressionTypeError(f"{what}: give an integer{bound}, got {value!r}.")
    return value


def _text(value, what: str, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise ExpressionTypeError(f"{what}: give a string, got {value!r}.")
    return value


def _regex(pattern, what: str) -> str:
    _text(pattern, what)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ExpressionTypeError(f"{what}: {pattern!r} is not a valid regular expression ({exc}).") from None
    return pattern


def _time_zone(name, what: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    _text(name, what)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionTypeError(
            f"{what}: unknown time zone {name!r}. Use an IANA name such as 'UTC', 'Europe/Paris' or "
            f"'America/New_York'.") from None
    return name


class ExprFunctions:
    """Math, NaN handling and the `.list` / `.struct` namespaces, as methods of every expression.

    Math follows IEEE 754 as both Polars and DuckDB do: sqrt(-1) and log(-1) are NaN, log(0) is -inf;
    a null input gives a null result.
    """

    def call_function(self, fn: str, args: tuple = (), params: tuple = ()):
        raise NotImplementedError  # provided by Expr

    # ---------------------------------------------------------------- math
    def floor(self): return self.call_function("floor")
    def ceil(self): return self.call_function("ceil")
    def sqrt(self): return self.call_function("sqrt")
    def cbrt(self): return self.call_function("cbrt")
    def exp(self): return self.call_function("exp")

    def log(self, base: float = math.e):
        """Logarithm, natural by default (Polars; DuckDB's `log(x)` is base 10, its `ln(x)` natural)."""
        if isinstance(base, bool) or not isinstance(base, (int, float)) or base <= 0 or base == 1:
            raise ExpressionTypeError(f"log(base={base!r}): the base must be a positive number other than 1.")
        return self.call_function("log", params=(float(base),))

    def log10(self): return self.call_function("log10")
    def log1p(self): return self.call_function("log1p")

    def pow(self, exponent):
        """This number raised to `exponent`, always a float64, as SQL's POWER (the `**` operator keeps integers)."""
        return self.call_function("pow", (exponent,))

    def sign(self):
        """-1, 0 or 1 in the input's type (Polars; DuckDB returns a tinyint). NaN stays NaN."""
        return self.call_function("sign")

    def clip(self, lower_bound=None, upper_bound=None):
        """Limit values to [lower_bound, upper_bound]; either bound may be left out, and a bound that is an
        expression and null in a row leaves that side open there. The result has the common type of the value
        and the bounds, as SQL's least/greatest (clip(0.5, 1.5) of integers gives floats). Null stays null, NaN
        stays NaN (Polars; DuckDB's least/greatest skip a null value and order NaN above every number)."""
        if lower_bound is None and upper_bound is None:
            raise ExpressionTypeError("clip(): give a lower_bound, an upper_bound, or both.")
        bounds = tuple(b for b in (lower_bound, upper_bound) if b is not None)
        return self.call_function("clip", bounds, (lower_bound is not None, upper_bound is not None))

    def sin(self): return self.call_function("sin")
    def cos(self): return self.call_function("cos")
    def tan(self): return self.call_function("tan")
    def cot(self): return self.call_function("cot")
    def arcsin(self): return self.call_function("arcsin")
    def arccos(self): return self.call_function("arccos")
    def arctan(self): return self.call_function("arctan")
    def sinh(self): return self.call_function("sinh")
    def cosh(self): return self.call_function("cosh")
    def tanh(self): return self.call_function("tanh")
    def arcsinh(self): return self.call_function("arcsinh")
    def arccosh(self): return self.call_function("arccosh")
    def arctanh(self): return self.call_function("arctanh")
    def degrees(self): return self.call_function("degrees")
    def radians(self): return self.call_function("radians")

    # ---------------------------------------------------------------- NaN handling
    def is_nan(self):
        """True for NaN, false for other numbers (integers and decimals included), null for null."""
        return self.call_function("is_nan")

    def is_not_nan(self): return self.call_function("is_not_nan")
    def is_finite(self): return self.call_function("is_finite")
    def is_infinite(self): return self.call_function("is_infinite")

    def fill_nan(self, value):
        """Replace NaN (not null: see fill_null) with `value`."""
        return self.call_function("fill_nan", (value,))

    # ---------------------------------------------------------------- null-safe comparison, exclusive or
    def eq_missing(self, other):
        """Equality that treats null as a value: null equals null, and never gives null (SQL IS NOT DISTINCT FROM)."""
        return self.call_function("eq_missing", (other,))

    def ne_missing(self, other):
        """The negation of eq_missing (SQL IS DISTINCT FROM)."""
        return self.call_function("ne_missing", (other,))

    def xor(self, other):
        """Boolean exclusive or; null when either side is null (SQL's three-valued logic)."""
        return self.call_function("xor", (other,))

    def replace(self, old, new=None):
        """Map values: `replace({1: 10, 2: 20})`, `replace([1, 2], [10, 20])` or `replace(1, 10)`; other values
        are kept (SQL `CASE x WHEN 1 THEN 10 ... ELSE x END`), and the result has the common type of the column and
        the new values (replace(1, 0.5) on an integer column gives floats). The values must have the column's kind."""
        if isinstance(old, dict):
            if new is not None:
                raise ExpressionTypeError("replace(mapping): give the mapping alone, without new values.")
            pairs = tuple(old.items())
        elif isinstance(old, (list, tuple)):
            news = list(new) if isinstance(new, (list, tuple)) else [new] * len(old)
            if len(news) != len(old):
                raise ExpressionTypeError(f"replace(): {len(old)} old values but {len(news)} new ones.")
            pairs = tuple(zip(old, news))
        else:
            pairs = ((old, new),)
        if not pairs:
            raise ExpressionTypeError("replace(): give at least one value to replace.")
        if any(key is None for key, _ in pairs):
            raise ExpressionTypeError("replace(None, ...): replace nulls with fill_null(value).")
        return self.call_function("replace", params=(pairs,))

    # ---------------------------------------------------------------- namespaces
    @property
    def list(self) -> ListFunctions: return ListFunctions(self)

    @property
    def struct(self) -> StructFunctions: return StructFunctions(self)


class StringLibrary:
    """String functions beyond the basic ones in `tree.StringFunctions` (which inherits this)."""

    _expr: ExprFunctions

    def _call(self, fn: str, args: tuple = (), params: tuple = ()):
        return self._expr.call_function(fn, args, params)

    def strip_chars(self, characters: str | None = None):
        """Remove leading and trailing `characters` (any of them), whitespace when None. DuckDB's trim(s) removes
        spaces only; trim(s, chars) is the same as strip_chars(chars)."""
        return self._call("str.strip_chars", params=(_text(characters, "str.strip_chars()", allow_none=True),))

    def strip_chars_start(self, characters: str | None = None):
        return self._call("str.strip_chars_start",
                          params=(_text(characters, "str.strip_chars_start()", allow_none=True),))

    def strip_chars_end(self, characters: str | None = None):
        return self._call("str.strip_chars_end", params=(_text(characters, "str.strip_chars_end()", allow_none=True),))

    strip, lstrip, rstrip = strip_chars, strip_chars_start, strip_chars_end

    def strip_prefix(self, prefix: str):
        return self._call("str.strip_prefix", params=(_text(prefix, "str.strip_prefix()"),))

    def strip_suffix(self, suffix: str):
        return self._call("str.strip_suffix", params=(_text(suffix, "str.strip_suffix()"),))

    def pad_start(self, length: int, fill_char: str = " "):
        """Pad on the left to `length` characters. A longer string is kept whole (Polars, Python's rjust);
        SQL's lpad would cut it to `length`."""
        return self._call("str.pad_start", params=(_integer(length, "str.pad_start()", 0), _fill(fill_char)))

    def pad_end(self, length: int, fill_char: str = " "):
        """Pad on the right to `length` characters; a longer string is kept whole (SQL's rpad would cut it)."""
        return self._call("str.pad_end", params=(_integer(length, "str.pad_end()", 0), _fill(fill_char)))

    def zfill(self, length: int):
        """Pad with zeros on the left to `length`, after any sign ('-7' -> '-007')."""
        return self._call("str.zfill", params=(_integer(length, "str.zfill()", 0),))

    def split(self, by: str):
        """A list of the parts between each `by` (DuckDB string_split): 'a,,b' -> ['a', '', 'b'], '' -> ['']."""
        if not _text(by, "str.split()"):
            raise ExpressionTypeError("str.split(''): give a non-empty separator.")
        return self._call("str.split", params=(by,))

    def extract(self, pattern: str, group_index: int = 1):
        """The `group_index` capture group of the first match of regex `pattern` (0: the whole match); null when
        it does not match (Polars; DuckDB's regexp_extract gives '')."""
        return self._call("str.extract", params=(_regex(pattern, "str.extract()"),
                                                 _integer(group_index, "str.extract(group_index)", 0)))

    def extract_all(self, pattern: str):
        """A list of every match of regex `pattern` (DuckDB regexp_extract_all)."""
        return self._call("str.extract_all", params=(_regex(pattern, "str.extract_all()"),))

    def count_matches(self, pattern: str, literal: bool = False):
        if not literal:
            _regex(pattern, "str.count_matches()")
        return self._call("str.count_matches", params=(_text(pattern, "str.count_matches()"), bool(literal)))

    def replace_all(self, pattern: str, value: str, literal: bool = True):
        """The same as `str.replace`: every occurrence is replaced (Polars' name)."""
        if not literal:
            _regex(pattern, "str.replace_all()")
        return self._call("str.replace", params=(pattern, value, literal))

    def find(self, pattern: str, literal: bool = False):
        """The character index, from 0, where the first match of `pattern` (a regex unless literal) starts; null
        when it does not occur (DuckDB: strpos(s, p) - 1, which gives -1 instead; Polars counts bytes)."""
        if not literal:
            _regex(pattern, "str.find()")
        return self._call("str.find", params=(_text(pattern, "str.find()"), bool(literal)))

    def contains_any(self, patterns, ascii_case_insensitive: bool = False):
        """Whether any of the literal strings `patterns` occurs (DuckDB: contains(s, p1) OR contains(s, p2) ...)."""
        if isinstance(patterns, str) or not patterns or not all(isinstance(p, str) for p in patterns):
            raise ExpressionTypeError(f"str.contains_any(): give a list of strings, got {patterns!r}.")
        return self._call("str.contains_any", params=(tuple(patterns), bool(ascii_case_insensitive)))

    def reverse(self): return self._call("str.reverse")
    def len_bytes(self): return self._call("str.len_bytes")

    def head(self, n: int):
        """The first n characters (all but the last -n when negative)."""
        return self._call("str.head", params=(_integer(n, "str.head()"),))

    def tail(self, n: int):
        """The last n characters (all but the first -n when negative)."""
        return self._call("str.tail", params=(_integer(n, "str.tail()"),))

    def to_date(self, format: str | None = None, strict: bool = True):
        """Parse dates with a strftime `format` such as '%Y-%m-%d' (inferred when None). A row whose text does not
        parse is a bad record, quarantined with its error as DuckDB's strptime would stop on it (the error budget,
        max_bad_records, says whether the run goes on); strict=False gives null instead, as DuckDB's try_strptime."""
        return self.strptime("date32", format, strict)

    def to_datetime(self, format: str | None = None, time_zone: str | None = None, strict: bool = True):
        """Parse timestamps (microseconds) with a strftime `format`; `time_zone` says which zone zone-less text
        is in (a `%z` offset in the text converts to it). Failures as in `to_date`."""
        dtype = pa.timestamp("us", _time_zone(time_zone, "str.to_datetime(time_zone)") if time_zone else None)
        return self.strptime(dtype, format, strict)

    def strptime(self, dtype, format: str | None = None, strict: bool = True):
        """Parse text into `dtype` (a date, timestamp or time type) with a strftime `format`."""
        arrow = to_arrow_type(dtype)
        if not (pa.types.is_date(arrow) or pa.types.is_timestamp(arrow) or pa.types.is_time(arrow)):
            raise ExpressionTypeError(f"str.strptime({dtype!r}): parse into a date, timestamp or time type, "
                                      f"e.g. 'date32' or 'timestamp[us]'.")
        return self._call("str.strptime", params=(arrow, _text(format, "str.strptime(format)", allow_none=True),
                                                  bool(strict)))


def _fill(fill_char) -> str:
    if not isinstance(fill_char, str) or len(fill_char) != 1:
        raise ExpressionTypeError(f"pad: fill_char must be one character, got {fill_char!r}.")
    return fill_char


class TemporalLibrary:
    """Date and time functions beyond year/month/day/hour in `tree.TemporalFunctions` (which inherits this).

    Fields of a zoned timestamp are read in its own zone (DuckDB: `ts AT TIME ZONE zone`).
    """

    _expr: ExprFunctions

    def _call(self, fn: str, args: tuple = (), params: tuple = ()):
        return self._expr.call_function(fn, args, params)

    def weekday(self):
        """ISO day of the week: Monday 1 to Sunday 7 (DuckDB isodow; DuckDB's dayofweek counts Sunday 0)."""
        return self._call("dt.weekday")

    def week(self):
        """ISO week number, 1 to 53 (DuckDB week): 2024-12-30 is in week 1 of 2025."""
        return self._call("dt.week")

    def iso_year(self): return self._call("dt.iso_year")
    def quarter(self): return self._call("dt.quarter")

    def ordinal_day(self):
        """Day of the year, 1 to 366 (DuckDB dayofyear)."""
        return self._call("dt.ordinal_day")

    day_of_year = ordinal_day

    def minute(self): return self._call("dt.minute")

    def second(self):
        """Whole seconds, 0 to 59 (DuckDB second)."""
        return self._call("dt.second")

    def millisecond(self): return self._call("dt.millisecond")
    def microsecond(self): return self._call("dt.microsecond")
    def nanosecond(self): return self._call("dt.nanosecond")
    def is_leap_year(self): return self._call("dt.is_leap_year")
    def days_in_month(self): return self._call("dt.days_in_month")

    def century(self):
        """The century: 2000 is in the 20th, 2001 in the 21st (DuckDB century)."""
        return self._call("dt.century")

    def millennium(self): return self._call("dt.millennium")

    def time(self):
        """The time of day (of a zoned timestamp: in its zone)."""
        return self._call("dt.time")

    def epoch(self, time_unit: str = "s"):
        """Time since 1970-01-01 00:00 UTC as an integer count of `time_unit` ('s', 'ms', 'us', 'ns' or 'd'),
        rounded down (DuckDB's epoch(ts) is a float of seconds; epoch_ms etc. are integers)."""
        if time_unit not in EPOCH_UNITS:
            raise ExpressionTypeError(f"dt.epoch({time_unit!r}): use one of {', '.join(EPOCH_UNITS)}.")
        return self._call("dt.epoch", params=(time_unit,))

    def date(self):
        """The calendar date (of a zoned timestamp: in its zone)."""
        return self._call("dt.date")

    def month_start(self): return self._call("dt.month_start")
    def month_end(self): return self._call("dt.month_end")

    def strftime(self, format: str):
        """Format as text with a strftime `format` such as '%Y-%m-%d %H:%M' (DuckDB strftime)."""
        return self._call("dt.strftime", params=(_text(format, "dt.strftime()"),))

    to_string = strftime

    def convert_time_zone(self, time_zone: str):
        """The same instants shown in another zone (DuckDB: `ts AT TIME ZONE zone` on a TIMESTAMPTZ). Needs a
        zoned timestamp: give a zone-less one its zone first with replace_time_zone."""
        return self._call("dt.convert_time_zone", params=(_time_zone(time_zone, "dt.convert_time_zone()"),))

    def replace_time_zone(self, time_zone: str | None):
        """Read zone-less wall-clock times as times in `time_zone` (None: drop the zone, keeping wall-clock
        times). A wall-clock time that a DST change skips or repeats stops the run with an error."""
        zone = None if time_zone is None else _time_zone(time_zone, "dt.replace_time_zone()")
        return self._call("dt.replace_time_zone", params=(zone,))

    # durations, e.g. (col("end") - col("start")).dt.total_days(): whole units, truncated toward zero
    def total_days(self): return self._call("dt.total_days")
    def total_hours(self): return self._call("dt.total_hours")
    def total_minutes(self): return self._call("dt.total_minutes")
    def total_seconds(self): return self._call("dt.total_seconds")
    def total_milliseconds(self): return self._call("dt.total_milliseconds")
    def total_microseconds(self): return self._call("dt.total_microseconds")
    def total_nanoseconds(self): return self._call("dt.total_nanoseconds")


class ListFunctions:
    """Functions of list columns (`col("tags").list.len()`), e.g. the lists `str.split` makes.

    Aggregates follow SQL (DuckDB list_sum etc.): null elements are skipped, and a list with no non-null
    elements gives null (Polars' list.sum gives 0).
    """

    def __init__(self, expr: ExprFunctions):
        self._expr = expr

    def _call(self, fn: str, args: tuple = (), params: tuple = ()):
        return self._expr.call_function(fn, args, params)

    def len(self):
        """The number of elements, nulls included (DuckDB len)."""
        return self._call("list.len")

    def get(self, index: int):
        """The element at `index`, from 0 (negative: from the end); null when the list is shorter (DuckDB's
        list[i] counts from 1)."""
        return self._call("list.get", params=(_integer(index, "list.get()"),))

    def first(self): return self.get(0)
    def last(self): return self.get(-1)

    def contains(self, item):
        """Whether the list holds `item` (DuckDB list_contains)."""
        if item is None:
            raise ExpressionTypeError("list.contains(None): give a non-null item (as in SQL, a null equals nothing).")
        return self._call("list.contains", (item,))

    def join(self, separator: str):
        """The string elements joined with `separator`, nulls skipped (DuckDB array_to_string); a list of only
        nulls gives '' (as PostgreSQL; DuckDB gives null)."""
        return self._call("list.join", params=(_text(separator, "list.join()"),))

    def sum(self): return self._call("list.sum")
    def mean(self): return self._call("list.mean")
    def min(self): return self._call("list.min")
    def max(self): return self._call("list.max")
    def median(self): return self._call("list.median")

    def std(self):
        """Sample standard deviation of the elements (DuckDB list_stddev_samp): null for fewer than two."""
        return self._call("list.std")

    def var(self):
        """Sample variance of the elements (DuckDB list_var_samp): null for fewer than two."""
        return self._call("list.var")

    def any(self):
        """Whether any element is true; null for a list with no non-null elements (SQL bool_or; Polars: false)."""
        return self._call("list.any")

    def all(self):
        """Whether every non-null element is true; null for a list with no non-null elements (SQL bool_and;
        Polars: true)."""
        return self._call("list.all")

    def sort(self, descending: bool = False):
        """The elements sorted, nulls last (DuckDB list_sort; Polars puts them first)."""
        return self._call("list.sort", params=(bool(descending),))

    def reverse(self): return self._call("list.reverse")

    def unique(self):
        """The distinct elements in order of first occurrence; a null element is kept once, as SELECT DISTINCT
        keeps it (DuckDB's list_distinct drops it)."""
        return self._call("list.unique")

    def n_unique(self):
        """The number of distinct non-null elements, as SQL's COUNT(DISTINCT) and sluice's count_distinct
        (DuckDB list_unique; Polars counts null as a value)."""
        return self._call("list.n_unique")

    def count_matches(self, item):
        """How many elements equal `item`."""
        if item is None:
            raise ExpressionTypeError("list.count_matches(None): give a non-null item (a null equals nothing).")
        return self._call("list.count_matches", (item,))

    def drop_nulls(self):
        """The list without its null elements (DuckDB list_filter(l, x -> x IS NOT NULL))."""
        return self._call("list.drop_nulls")

    def head(self, n: int):
        """The first n elements (DuckDB l[1:n])."""
        return self._call("list.head", params=(_integer(n, "list.head()", 0),))

    def tail(self, n: int):
        """The last n elements."""
        return self._call("list.tail", params=(_integer(n, "list.tail()", 0),))

    def slice(self, offset: int, length: int | None = None):
        """`length` elements (all the rest when None) from `offset`, counted from 0 (negative: from the end)."""
        length = None if length is None else _integer(length, "list.slice(length)", 0)
        return self._call("list.slice", params=(_integer(offset, "list.slice(offset)"), length))


class StructFunctions:
    """Functions of struct columns: `col("address").struct.field("city")`."""

    def __init__(self, expr: ExprFunctions):
        self._expr = expr

    def field(self, name: str):
        """The struct's field `name`, as a column named `name`."""
        return self._expr.call_function("struct.field", params=(_text(name, "struct.field()"),)).alias(name)

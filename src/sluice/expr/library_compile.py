"""The Polars lowering of each function in `library` (`compile.to_polars` looks them up in LIBRARY_POLARS_CALLS).

Each entry takes the compiled expression arguments, then the call's plain parameters. Where Polars'
own function differs from the SQL semantics `library` promises, the lowering adds what it takes.
"""

from __future__ import annotations

import re
from typing import Callable

import polars as pl

from .types import to_polars_type


def _when_any_value(a: pl.Expr, result: pl.Expr) -> pl.Expr:
    """`result` for a list with a non-null element, else null (SQL aggregates over no values)."""
    return pl.when(a.list.drop_nulls().list.len() > 0).then(result)


def _nan(a: pl.Expr) -> pl.Expr:
    """NaN tests for any number: Polars has none for decimals, and integers are never NaN."""
    return a.cast(pl.Float64).is_nan()


def _clip(a: pl.Expr, *bounds_then_flags) -> pl.Expr:
    """As SQL's greatest/least, the result has the common type of the value and the bounds (Polars' clip casts
    0.5 into an integer column as 0); NaN is kept, and a null bound leaves that side open."""
    *bounds, has_lower, has_upper = bounds_then_flags
    given = iter(bounds)
    chain = pl.when(_nan(a)).then(a)
    if has_lower:
        lower = next(given)
        chain = chain.when(a < lower).then(lower)
    if has_upper:
        upper = next(given)
        chain = chain.when(a > upper).then(upper)
    return chain.otherwise(a)


def _strptime(a: pl.Expr, dtype, format: str | None, strict: bool) -> pl.Expr:
    target = to_polars_type(dtype)
    if isinstance(target, pl.Datetime) and target.time_zone is not None:
        # Zone-less text is wall-clock time in the zone; text with %z is converted to it
        naive = a.str.strptime(pl.Datetime(target.time_unit), format, strict=strict) \
            if format is None or "%z" not in format else None
        if naive is not None:
            return naive.dt.replace_time_zone(target.time_zone)
        return a.str.strptime(pl.Datetime(target.time_unit, "UTC"), format, strict=strict) \
            .dt.convert_time_zone(target.time_zone)
    return a.str.strptime(target, format, strict=strict)


def _find(a: pl.Expr, pattern: str, literal: bool) -> pl.Expr:
    """A character index: the length of the shortest prefix that a match follows (Polars' str.find counts bytes)."""
    body = re.escape(pattern) if literal else pattern
    return a.str.extract(f"(?s)^(.*?)(?:{body})", 1).str.len_chars().cast(pl.Int64)


def _replace(a: pl.Expr, pairs: tuple) -> pl.Expr:
    """The result has the common type of the column and the new values, as SQL CASE (Polars' replace would cast
    1.5 into an integer column as 1)."""
    return a.replace_strict([old for old, _ in pairs], [new for _, new in pairs], default=a)


LIBRARY_POLARS_CALLS: dict[str, Callable[..., pl.Expr]] = {
    # math
    "floor": lambda a: a.floor(),
    "ceil": lambda a: a.ceil(),
    "sqrt": lambda a: a.sqrt(),
    "cbrt": lambda a: a.cbrt(),
    "exp": lambda a: a.exp(),
    "log": lambda a, base: a.log(base),
    "log10": lambda a: a.log10(),
    "log1p": lambda a: a.log1p(),
    "pow": lambda a, exponent: a.cast(pl.Float64).pow(exponent),
    "sign": lambda a: a.sign(),
    "clip": _clip,
    "sin": lambda a: a.sin(), "cos": lambda a: a.cos(), "tan": lambda a: a.tan(), "cot": lambda a: a.cot(),
    "arcsin": lambda a: a.arcsin(), "arccos": lambda a: a.arccos(), "arctan": lambda a: a.arctan(),
    "sinh": lambda a: a.sinh(), "cosh": lambda a: a.cosh(), "tanh": lambda a: a.tanh(),
    "arcsinh": lambda a: a.arcsinh(), "arccosh": lambda a: a.arccosh(), "arctanh": lambda a: a.arctanh(),
    "degrees": lambda a: a.degrees(), "radians": lambda a: a.radians(),
    # NaN and null handling
    "is_nan": _nan,
    "is_not_nan": lambda a: ~_nan(a),
    "is_finite": lambda a: a.cast(pl.Float64).is_finite(),
    "is_infinite": lambda a: a.cast(pl.Float64).is_infinite(),
    "fill_nan": lambda a, value: pl.when(_nan(a)).then(value).otherwise(a),
    "coalesce": lambda *values: pl.coalesce(list(values)),
    "eq_missing": lambda a, b: a.eq_missing(b),
    "ne_missing": lambda a, b: a.ne_missing(b),
    "xor": lambda a, b: a.xor(b),
    "replace": _replace,
    # strings
    "str.strip_chars": lambda a, chars: a.str.strip_chars(chars),
    "str.strip_chars_start": lambda a, chars: a.str.strip_chars_start(chars),
    "str.strip_chars_end": lambda a, chars: a.str.strip_chars_end(chars),
    "str.strip_prefix": lambda a, prefix: a.str.strip_prefix(prefix),
    "str.strip_suffix": lambda a, suffix: a.str.strip_suffix(suffix),
    "str.pad_start": lambda a, length, fill: a.str.pad_start(length, fill),
    "str.pad_end": lambda a, length, fill: a.str.pad_end(length, fill),
    "str.zfill": lambda a, length: a.str.zfill(length),
    "str.split": lambda a, by: a.str.split(by),
    "str.extract": lambda a, pattern, group: a.str.extract(pattern, group),
    "str.extract_all": lambda a, pattern: a.str.extract_all(pattern),
    "str.count_matches": lambda a, pattern, literal: a.str.count_matches(pattern, literal=literal).cast(pl.Int64),
    "str.find": _find,
    "str.contains_any": lambda a, patterns, nocase: a.str.contains_any(list(patterns), ascii_case_insensitive=nocase),
    "str.reverse": lambda a: a.str.reverse(),
    "str.len_bytes": lambda a: a.str.len_bytes().cast(pl.Int64),
    "str.head": lambda a, n: a.str.head(n),
    "str.tail": lambda a, n: a.str.tail(n),
    "str.strptime": _strptime,
    # temporal
    "dt.weekday": lambda a: a.dt.weekday().cast(pl.Int64),
    "dt.week": lambda a: a.dt.week().cast(pl.Int64),
    "dt.iso_year": lambda a: a.dt.iso_year().cast(pl.Int64),
    "dt.quarter": lambda a: a.dt.quarter().cast(pl.Int64),
    "dt.ordinal_day": lambda a: a.dt.ordinal_day().cast(pl.Int64),
    "dt.minute": lambda a: a.dt.minute().cast(pl.Int64),
    "dt.second": lambda a: a.dt.second().cast(pl.Int64),
    "dt.millisecond": lambda a: a.dt.millisecond().cast(pl.Int64),
    "dt.microsecond": lambda a: a.dt.microsecond().cast(pl.Int64),
    "dt.nanosecond": lambda a: a.dt.nanosecond().cast(pl.Int64),
    "dt.is_leap_year": lambda a: a.dt.is_leap_year(),
    "dt.days_in_month": lambda a: a.dt.days_in_month().cast(pl.Int64),
    "dt.century": lambda a: a.dt.century().cast(pl.Int64),
    "dt.millennium": lambda a: a.dt.millennium().cast(pl.Int64),
    "dt.time": lambda a: a.dt.time(),
    "dt.epoch": lambda a, unit: a.dt.epoch(unit).cast(pl.Int64),
    "dt.date": lambda a: a.dt.date(),
    "dt.month_start": lambda a: a.dt.month_start(),
    "dt.month_end": lambda a: a.dt.month_end(),
    "dt.strftime": lambda a, format: a.dt.to_string(format),
    "dt.convert_time_zone": lambda a, zone: a.dt.convert_time_zone(zone),
    "dt.replace_time_zone": lambda a, zone: a.dt.replace_time_zone(zone),
    "dt.total_days": lambda a: a.dt.total_days().cast(pl.Int64),
    "dt.total_hours": lambda a: a.dt.total_hours().cast(pl.Int64),
    "dt.total_minutes": lambda a: a.dt.total_minutes().cast(pl.Int64),
    "dt.total_seconds": lambda a: a.dt.total_seconds().cast(pl.Int64),
    "dt.total_milliseconds": lambda a: a.dt.total_milliseconds().cast(pl.Int64),
    "dt.total_microseconds": lambda a: a.dt.total_microseconds().cast(pl.Int64),
    "dt.total_nanoseconds": lambda a: a.dt.total_nanoseconds().cast(pl.Int64),
    # lists
    "list.len": lambda a: a.list.len().cast(pl.Int64),
    "list.get": lambda a, index: a.list.get(index, null_on_oob=True),
    "list.contains": lambda a, item: a.list.contains(item),
    "list.join": lambda a, separator: a.list.join(separator, ignore_nulls=True),
    "list.sum": lambda a: _when_any_value(a, a.list.sum()),  # Polars gives 0
    "list.mean": lambda a: a.list.mean(),
    "list.min": lambda a: a.list.min(),
    "list.max": lambda a: a.list.max(),
    "list.median": lambda a: a.list.median(),
    "list.std": lambda a: a.list.std(ddof=1),
    "list.var": lambda a: a.list.var(ddof=1),
    "list.any": lambda a: _when_any_value(a, a.list.any()),
    "list.all": lambda a: _when_any_value(a, a.list.all()),
    "list.sort": lambda a, descending: a.list.sort(descending=descending, nulls_last=True),
    "list.reverse": lambda a: a.list.reverse(),
    "list.unique": lambda a: a.list.unique(maintain_order=True),
    "list.n_unique": lambda a: a.list.drop_nulls().list.n_unique().cast(pl.Int64),
    "list.count_matches": lambda a, item: a.list.count_matches(item).cast(pl.Int64),
    "list.drop_nulls": lambda a: a.list.drop_nulls(),
    "list.head": lambda a, n: a.list.head(n),
    "list.tail": lambda a, n: a.list.tail(n),
    "list.slice": lambda a, offset, length: a.list.slice(offset, length),
    # structs
    "struct.field": lambda a, name: a.struct.field(name),
}

"""Plan-time signatures of the functions in `library`: which kinds each accepts, and the kind it returns.

`typecheck._Checker` reads LIBRARY_SIGNATURES, so `col("name").sqrt()` on a string column fails when the
plan is built, naming the column and the fix, before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kinds import BOOL, LIST, NUMERIC, STRING, STRUCT, TEMPORAL

SAME = "same as the first argument"
ELEMENT = "the list's element kind"
FIELD = "the struct field's kind"


@dataclass(frozen=True)
class Signature:
    needs: frozenset[str]            # kinds the first argument may have
    what: str                        # "a number": the message says "sqrt() needs a number"
    result: str                      # a kind, SAME, ELEMENT or FIELD
    others: frozenset[str] | None = None   # kinds the other expression arguments may have (None: any)
    elements: frozenset[str] | None = None  # for a list argument: kinds its elements may have
    duration: bool | None = None     # a temporal argument must be a duration (True) or a date/time (False)


def _numeric(result=NUMERIC, others=None) -> Signature:
    return Signature(frozenset({NUMERIC}), "a number", result, others)


_NUMBER = frozenset({NUMERIC})
_MATH = {fn: _numeric() for fn in (
    "sqrt", "cbrt", "exp", "log", "log10", "log1p", "sin", "cos", "tan", "cot", "arcsin", "arccos", "arctan",
    "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "degrees", "radians")}
_MATH.update({"floor": _numeric(SAME), "ceil": _numeric(SAME), "sign": _numeric(SAME),
              "pow": _numeric(NUMERIC, _NUMBER), "clip": _numeric(SAME, _NUMBER)})
_MATH.update({fn: _numeric(BOOL) for fn in ("is_nan", "is_not_nan", "is_finite", "is_infinite")})
_MATH["fill_nan"] = _numeric(SAME, _NUMBER)


def _string(result=STRING) -> Signature:
    return Signature(frozenset({STRING}), "a string", result)


_STRINGS = {fn: _string() for fn in (
    "str.strip_chars", "str.strip_chars_start", "str.strip_chars_end", "str.strip_prefix", "str.strip_suffix",
    "str.pad_start", "str.pad_end", "str.zfill", "str.extract", "str.reverse", "str.head", "str.tail")}
_STRINGS.update({"str.split": _string(LIST), "str.extract_all": _string(LIST), "str.count_matches": _string(NUMERIC),
                 "str.len_bytes": _string(NUMERIC), "str.strptime": _string(TEMPORAL),
                 "str.find": _string(NUMERIC), "str.contains_any": _string(BOOL)})


def _temporal(result=NUMERIC, duration=False) -> Signature:
    return Signature(frozenset({TEMPORAL}), "a duration" if duration else "a date or timestamp", result,
                     duration=duration)


_TEMPORAL = {fn: _temporal() for fn in (
    "dt.weekday", "dt.week", "dt.iso_year", "dt.quarter", "dt.ordinal_day", "dt.minute", "dt.second",
    "dt.millisecond", "dt.microsecond", "dt.epoch", "dt.nanosecond", "dt.days_in_month", "dt.century",
    "dt.millennium")}
_TEMPORAL.update({fn: _temporal(TEMPORAL) for fn in (
    "dt.date", "dt.time", "dt.month_start", "dt.month_end", "dt.convert_time_zone", "dt.replace_time_zone")})
_TEMPORAL.update({"dt.is_leap_year": _temporal(BOOL), "dt.strftime": _temporal(STRING)})
_TEMPORAL.update({fn: _temporal(NUMERIC, duration=True) for fn in (
    "dt.total_days", "dt.total_hours", "dt.total_minutes", "dt.total_seconds", "dt.total_milliseconds",
    "dt.total_microseconds", "dt.total_nanoseconds")})


def _list(result, elements=None) -> Signature:
    return Signature(frozenset({LIST}), "a list", result, elements=elements)


_LISTS = {"list.len": _list(NUMERIC), "list.get": _list(ELEMENT), "list.contains": _list(BOOL),
          "list.join": _list(STRING, frozenset({STRING})), "list.sum": _list(NUMERIC, _NUMBER),
          "list.mean": _list(NUMERIC, _NUMBER), "list.min": _list(ELEMENT), "list.max": _list(ELEMENT),
          "list.median": _list(NUMERIC, _NUMBER), "list.std": _list(NUMERIC, _NUMBER),
          "list.var": _list(NUMERIC, _NUMBER), "list.any": _list(BOOL, frozenset({BOOL})),
          "list.all": _list(BOOL, frozenset({BOOL})), "list.sort": _list(LIST), "list.reverse": _list(LIST),
          "list.drop_nulls": _list(LIST), "list.head": _list(LIST), "list.tail": _list(LIST),
          "list.slice": _list(LIST), "list.unique": _list(LIST), "list.n_unique": _list(NUMERIC),
          "list.count_matches": _list(NUMERIC),
          "struct.field": Signature(frozenset({STRUCT}), "a struct", FIELD)}

# list functions whose result has the elements of their argument
LIST_PRESERVING = frozenset({"list.sort", "list.reverse", "list.drop_nulls", "list.head", "list.tail", "list.slice",
                             "list.unique"})

_COMPARISONS = {"xor": Signature(frozenset({BOOL}), "booleans", BOOL, frozenset({BOOL}))}

LIBRARY_SIGNATURES: dict[str, Signature] = {**_MATH, **_STRINGS, **_TEMPORAL, **_LISTS, **_COMPARISONS}

"""The expression nodes SQL needed (LIKE, calendar offsets) and the SQL expressions built on them, each against
a hand-written expectation."""

from __future__ import annotations

import datetime
import decimal

import polars as pl
import pytest

import sluice as sl
from sluice import col
from sluice.errors import ExpressionTypeError
from sluice.expr.compile import to_polars
from sluice.expr.typecheck import check_expression

pytest.importorskip("sqlglot")


WORDS = ["apple", "grape", "pineapple", "ap", "a_b", "a.b", "APPLE", "line\nbreak apple", None]


@pytest.mark.parametrize("pattern, expected", [
    ("%apple", ["apple", "pineapple", "line\nbreak apple"]),
    ("ap%", ["apple", "ap"]),
    ("%pe%", ["grape"]),
    ("apple", ["apple"]),
    ("a_b", ["a_b", "a.b"]),
    ("a.b", ["a.b"]),
    ("%n%a%", ["pineapple", "line\nbreak apple"]),
    ("_p%", ["apple", "ap"]),
])
def test_like_matches_sql_semantics(pattern, expected):
    frame = pl.DataFrame({"w": WORDS})
    kept = frame.filter(to_polars(col("w").str.like(pattern)))["w"].to_list()
    assert kept == expected


def test_ilike_ignores_case():
    frame = pl.DataFrame({"w": WORDS})
    assert frame.filter(to_polars(col("w").str.like("apple", case_insensitive=True)))["w"].to_list() == [
        "apple", "APPLE"]


def test_like_needs_a_string_column():
    schema = sl.from_items([{"n": 1}]).schema
    with pytest.raises(ExpressionTypeError, match="needs a string"):
        check_expression(col("n").str.like("1%"), schema)


def test_offset_by_adds_calendar_spans():
    frame = pl.DataFrame({"d": [datetime.date(2024, 1, 31), datetime.date(2023, 3, 1)]})
    out = frame.select(to_polars(col("d").dt.offset_by("1mo")).alias("m"), to_polars(col("d").dt.offset_by("-1d")).alias("y"))
    assert out["m"].to_list() == [datetime.date(2024, 2, 29), datetime.date(2023, 4, 1)]
    assert out["y"].to_list() == [datetime.date(2024, 1, 30), datetime.date(2023, 2, 28)]


def test_offset_by_refuses_an_unknown_span():
    with pytest.raises(ExpressionTypeError, match="unknown span"):
        col("d").dt.offset_by("3 months")


def rows(query: str, **tables):
    return sl.sql(query, tables).to_arrow().to_pylist()


def test_date_and_interval_constants_fold_exactly():
    days = sl.from_items([{"d": datetime.date(1998, 9, 2)}, {"d": datetime.date(1998, 9, 3)}])
    assert rows("select d from days where d <= date '1998-12-01' - interval '90' day (3)", days=days) == [
        {"d": datetime.date(1998, 9, 2)}]
    assert rows("select d + interval '1' month as m from days order by m", days=days) == [
        {"m": datetime.date(1998, 10, 2)}, {"m": datetime.date(1998, 10, 3)}]


def test_decimal_literals_compare_exactly_with_decimal_columns():
    prices = sl.from_items([{"p": decimal.Decimal("0.05")}, {"p": decimal.Decimal("0.07")},
                            {"p": decimal.Decimal("0.08")}])
    prices = prices.with_columns(col("p").cast("decimal(15,2)"))
    assert [r["p"] for r in rows("select p from t where p between 0.06 - 0.01 and 0.06 + 0.01 order by p",
                                 t=prices)] == [decimal.Decimal("0.05"), decimal.Decimal("0.07")]


def test_case_extract_substring_in_and_coalesce():
    people = sl.from_items([
        {"name": "Ada", "phone": "13-555", "born": datetime.date(1990, 5, 1), "nick": None},
        {"name": "Bob", "phone": "31-777", "born": datetime.date(1985, 1, 9), "nick": "B"},
        {"name": "Cy", "phone": "99-000", "born": datetime.date(2001, 12, 31), "nick": None},
    ])
    out = rows("""
        select name,
               case when extract(year from born) < 1990 then 'old' when name like 'A%' then 'a' else 'other' end as kind,
               substring(phone from 1 for 2) as code,
               coalesce(nick, upper(name)) as shown
        from people
        where substring(phone, 1, 2) in ('13', '31') or name not like 'C%'
        order by name""", people=people)
    assert out == [{"name": "Ada", "kind": "a", "code": "13", "shown": "ADA"},
                   {"name": "Bob", "kind": "old", "code": "31", "shown": "B"}]

"""The expression library's plan-time checks: a function given the wrong kind of column fails when the plan is
built, before any data is read, with an ExpressionTypeError naming the column, its type and the fix; bad
parameters fail when the expression is built."""

from __future__ import annotations

import pyarrow as pa
import pytest

import sluice as sl
from sluice import coalesce, col, lit
from sluice.expr.typecheck import check_expression

SCHEMA = pa.schema([
    ("n", pa.int64()), ("f", pa.float64()), ("s", pa.string()), ("ts", pa.timestamp("us")),
    ("zoned", pa.timestamp("us", "UTC")), ("d", pa.date32()), ("tags", pa.list_(pa.string())),
    ("nums", pa.list_(pa.int64())), ("addr", pa.struct([("city", pa.string()), ("zip", pa.int64())])),
])


@pytest.mark.parametrize("expr, column, needed", [
    (col("s").sqrt(), "s", "needs a number"),
    (col("s").log(), "s", "needs a number"),
    (col("ts").clip(0, 1), "ts", "needs a number"),
    (col("s").is_nan(), "s", "needs a number"),
    (col("f").fill_nan("x"), None, "must be numbers"),
    (col("n").str.strip_chars(), "n", "needs a string"),
    (col("d").str.to_date(), "d", "needs a string"),
    (col("n").str.split(","), "n", "needs a string"),
    (col("s").dt.weekday(), "s", "needs a date or timestamp"),
    (col("n").dt.epoch(), "n", "needs a date or timestamp"),
    (col("ts").dt.convert_time_zone("UTC"), "ts", "needs a timestamp with a time zone"),
    (col("ts").dt.total_days(), "ts", "needs a duration"),
    (col("s").list.len(), "s", "needs a list"),
    (col("tags").list.sum(), "tags", "list of numbers"),
    (col("nums").list.join(","), "nums", "list of strings"),
    (col("s").struct.field("city"), "s", "needs a struct"),
    (col("addr").struct.field("town"), "addr", "no field 'town'"),
    (coalesce(col("s"), col("n")), "n", "values of one type"),
    (col("n").xor(col("f") > 0), "n", "needs booleans"),
    (col("nums").list.any(), "nums", "list of booleans"),
    (col("s").eq_missing(col("n")), "s", "cannot compare"),
    (col("s").dt.days_in_month(), "s", "needs a date or timestamp"),
    (col("n").replace({1: "one"}), "n", "replace\\(\\) maps"),
    (col("n").str.find("a"), "n", "needs a string"),
    (col("tags").list.n_unique().str.len(), None, "needs a string"),
])
def test_a_function_given_the_wrong_kind_of_column_names_the_column_at_plan_time(expr, column, needed):
    with pytest.raises(sl.ExpressionTypeError, match=needed) as info:
        check_expression(expr, SCHEMA, "in select()")
    message = str(info.value)
    if column is not None:
        assert f"column {column!r}" in message
    assert "The input has these columns" in message


def test_the_plan_is_refused_before_any_data_is_read():
    ds = sl.from_arrow(pa.table({"s": ["a"], "n": [1]}))
    with pytest.raises(sl.ExpressionTypeError, match="column 's'.*Cast it first"):
        ds.select(col("s").sqrt())
    with pytest.raises(sl.ExpressionTypeError, match="struct.field.*Its fields are: 'city', 'zip'"):
        check_expression(col("addr").struct.field("town"), SCHEMA)


@pytest.mark.parametrize("expr, kind", [
    (col("n").sqrt(), "numeric"), (col("n").floor(), "numeric"), (col("f").is_nan(), "boolean"),
    (col("s").str.split(","), "list"), (col("s").str.split(",").list.get(0), "string"),
    (col("tags").list.first(), "string"), (col("nums").list.max(), "numeric"), (col("tags").list.len(), "numeric"),
    (col("addr").struct.field("zip"), "numeric"), (col("addr").struct.field("city").str.upper(), "string"),
    (col("s").str.to_datetime("%Y"), "temporal"), (col("ts").dt.strftime("%Y"), "string"),
    ((col("ts") - col("ts")).dt.total_hours(), "numeric"), (coalesce(col("n"), col("f"), 0), "numeric"),
    (col("zoned").dt.convert_time_zone("Asia/Tokyo").dt.hour(), "numeric"),
    (col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone("Asia/Tokyo"), "temporal"),
    (col("tags").list.sort().list.first(), "string"), (col("nums").list.head(2).list.last(), "numeric"),
    (col("n").eq_missing(None), "boolean"), (col("ts").dt.time(), "temporal"),
])
def test_result_kinds_let_functions_chain(expr, kind):
    assert check_expression(expr, SCHEMA) == kind


@pytest.mark.parametrize("build, problem", [
    (lambda: col("f").log(0), "positive number other than 1"),
    (lambda: col("f").log(1), "positive number other than 1"),
    (lambda: col("f").clip(), "lower_bound, an upper_bound, or both"),
    (lambda: col("s").str.pad_start(-1), "at least 0"),
    (lambda: col("s").str.pad_start(3, "ab"), "one character"),
    (lambda: col("s").str.split(""), "non-empty separator"),
    (lambda: col("s").str.extract("(a", 1), "not a valid regular expression"),
    (lambda: col("s").str.strptime("int64", "%Y"), "date, timestamp or time"),
    (lambda: col("s").str.to_datetime("%Y", time_zone="Mars/Olympus"), "unknown time zone"),
    (lambda: col("ts").dt.convert_time_zone("Nowhere"), "unknown time zone"),
    (lambda: col("ts").dt.epoch("minutes"), "use one of s, ms, us, ns, d"),
    (lambda: col("tags").list.get(1.5), "integer"),
    (lambda: col("tags").list.contains(None), "non-null item"),
    (lambda: coalesce(), "at least one expression"),
    (lambda: col("n").replace([1, 2], [3]), "2 old values but 1 new"),
    (lambda: col("n").replace(None, 0), "fill_null"),
    (lambda: col("s").str.contains_any("ab"), "list of strings"),
    (lambda: col("s").str.find("(", literal=False), "not a valid regular expression"),
])
def test_bad_parameters_fail_when_the_expression_is_built(build, problem):
    with pytest.raises(sl.ExpressionTypeError, match=problem):
        build()


def test_library_nodes_compare_and_print_structurally():
    assert col("f").clip(0, 1).same_as(col("f").clip(0, 1))
    assert not col("f").clip(0, 1).same_as(col("f").clip(0, 2))
    assert not col("f").clip(lower_bound=1).same_as(col("f").clip(upper_bound=1))
    assert col("s").str.strip().same_as(col("s").str.strip_chars())
    assert repr(coalesce(col("a"), lit(0))) == "coalesce(col('a'), 0)"
    assert col("addr").struct.field("city").output_name() == "city"
    assert col("s").str.split(",").list.len().output_name() == "s"


def test_every_function_the_docs_table_says_sluice_has_exists():
    """docs/expressions.md lists Polars' expression functions and which sluice has: each name it gives resolves."""
    import pathlib
    import re

    table = pathlib.Path(__file__).resolve().parents[2] / "docs" / "expressions.md"
    named = re.findall(r"^\| `[a-z_0-9]+` \| yes \| `((?:str|dt|list|struct)\.)?([a-z_0-9]+)` \|", table.read_text(),
                       re.MULTILINE)
    assert len(named) > 100
    for namespace, name in named:
        owner = getattr(col("a"), namespace.rstrip(".")) if namespace else col("a")
        assert callable(getattr(owner, name, None)), f"docs/expressions.md says sluice has {namespace}{name}"

"""Golden tests for merging adjacent projections and removing identity projections."""

from __future__ import annotations

import pyarrow as pa

import sluice as sl
from sluice import col, lit, when
from sluice.io.memory import ArrowSource
from sluice.plan.logical import Filter, Limit, MapBatches, Project, Scan
from sluice.plan.rules.merge_projections import merge_projections

SOURCE = ArrowSource(pa.table({"a": [1, 2, 3], "b": ["x", "y", None], "c": [1.0, 2.0, 3.0]}))
SCAN = Scan(SOURCE)


def identity(batch):
    return batch


def test_select_after_with_columns_collapses_into_one_projection():
    ds = sl.Dataset(SCAN).with_columns(d=col("a") * 2).select("b", "d")
    expected = Project(SCAN, (col("b"), (col("a") * 2).alias("d")))
    assert merge_projections(ds.plan) == expected
    assert merge_projections(ds.plan).tree_string() == (
        "Project [col('b'), (col('a') * 2).alias('d')]\n  Scan arrow (3 rows)")


def test_rename_then_select_becomes_an_alias():
    ds = sl.Dataset(SCAN).rename({"a": "x"}).select("x", "c")
    assert merge_projections(ds.plan) == Project(SCAN, (col("a").alias("x"), col("c")))


def test_three_projections_collapse_in_one_application():
    ds = sl.Dataset(SCAN).with_columns(d=col("a") + 1).rename({"d": "e"}).select("e")
    assert merge_projections(ds.plan) == Project(SCAN, ((col("a") + 1).alias("e"),))


def test_expensive_expression_used_twice_is_not_inlined():
    inner = Project(SCAN, (col("a"), (col("c") * col("c") + 1).alias("d")))
    outer = Project(inner, ((col("d") + 1).alias("x"), (col("d") * 2).alias("y")))
    assert merge_projections(outer) is outer


def test_expensive_expression_used_once_is_inlined():
    inner = Project(SCAN, (col("a"), (col("c") * col("c") + 1).alias("d")))
    outer = Project(inner, ((col("d") + 1).alias("x"), col("a")))
    expected = Project(SCAN, (((col("c") * col("c") + 1) + 1).alias("x"), col("a")))
    assert merge_projections(outer) == expected


def test_expression_used_twice_within_one_output_is_not_inlined():
    inner = Project(SCAN, (when(col("a") > 1).then(col("c")).otherwise(0.0).alias("w"),))
    outer = Project(inner, ((col("w") * col("w")).alias("sq"),))
    assert merge_projections(outer) is outer


def test_plain_column_or_literal_used_twice_is_inlined():
    inner = Project(SCAN, (col("a").alias("k"), lit(5).alias("five")))
    outer = Project(inner, ((col("k") + col("k")).alias("x"), (col("five") * col("five")).alias("y")))
    expected = Project(SCAN, ((col("a") + col("a")).alias("x"), (lit(5) * lit(5)).alias("y")))
    assert merge_projections(outer) == expected


def test_identity_projection_is_removed():
    assert merge_projections(Project(SCAN, (col("a"), col("b"), col("c")))) == SCAN
    assert merge_projections(Filter(Project(SCAN, (col("a"), col("b"), col("c"))), col("a") > 1)) == Filter(
        SCAN, col("a") > 1)


def test_reordering_or_subset_is_not_identity():
    reorder = Project(SCAN, (col("c"), col("b"), col("a")))
    subset = Project(SCAN, (col("a"), col("b")))
    assert merge_projections(reorder) is reorder
    assert merge_projections(subset) is subset


def test_projections_separated_by_a_filter_or_limit_do_not_merge():
    inner = Project(SCAN, (col("a"), (col("c") * 2).alias("d")))
    for middle in (Filter(inner, col("a") > 1), Limit(inner, 2)):
        plan = Project(middle, (col("d"),))
        assert merge_projections(plan) is plan


def test_projection_over_map_batches_is_not_merged_through_it():
    inner = Project(SCAN, (col("a"), (col("c") * 2).alias("d")))
    plan = Project(MapBatches(inner, identity), (col("d"),))
    assert merge_projections(plan) is plan


def test_output_names_and_schema_are_preserved():
    ds = sl.Dataset(SCAN).with_columns(a=col("a") * 10, z=col("c") - 1).rename({"c": "cc"}).drop("b")
    merged = merge_projections(ds.plan)
    assert isinstance(merged, Project) and merged.input == SCAN
    assert merged.schema == ds.plan.schema

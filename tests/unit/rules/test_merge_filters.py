"""Golden tests for merging adjacent filters into one conjunction."""

from __future__ import annotations

import pyarrow as pa

from sluice import col
from sluice.io.memory import ArrowSource, RangeSource
from sluice.plan.logical import Filter, Limit, MapBatches, Project, Scan, Union
from sluice.plan.rules.merge_filters import merge_filters

SOURCE = ArrowSource(pa.table({"a": [1, 2, 3], "b": ["x", "y", None]}))
SCAN = Scan(SOURCE)


def identity(batch):
    return batch


def test_two_filters_merge_inner_first():
    plan = Filter(Filter(SCAN, col("a") > 1), col("b") == "x")
    expected = Filter(SCAN, (col("a") > 1) & (col("b") == "x"))
    assert merge_filters(plan) == expected
    assert merge_filters(plan).tree_string() == (
        "Filter ((col('a') > 1) & (col('b') == 'x'))\n  Scan arrow (3 rows)")


def test_three_filters_merge_into_one():
    plan = Filter(Filter(Filter(SCAN, col("a") > 1), col("a") < 3), col("b").is_not_null())
    expected = Filter(SCAN, ((col("a") > 1) & (col("a") < 3)) & col("b").is_not_null())
    assert merge_filters(plan) == expected


def test_single_filter_is_unchanged():
    plan = Filter(SCAN, col("a") > 1)
    assert merge_filters(plan) is plan


def test_filters_separated_by_a_limit_do_not_merge():
    plan = Filter(Limit(Filter(SCAN, col("a") > 1), 2), col("b") == "x")
    assert merge_filters(plan) == plan


def test_filters_separated_by_a_projection_do_not_merge():
    plan = Filter(Project(Filter(SCAN, col("a") > 1), (col("a"), col("b"))), col("b") == "x")
    assert merge_filters(plan) == plan


def test_filters_separated_by_map_batches_do_not_merge():
    plan = Filter(MapBatches(Filter(SCAN, col("a") > 1), identity), col("a") < 3)
    assert merge_filters(plan) == plan


def test_filters_merge_inside_every_union_branch_and_below_other_nodes():
    scan = Scan(RangeSource(0, 10))
    branch = Filter(Filter(scan, col("id") > 2), col("id") < 8)
    plan = Limit(Union((branch, Filter(scan, col("id") == 1))), 5)
    merged = Filter(scan, (col("id") > 2) & (col("id") < 8))
    assert merge_filters(plan) == Limit(Union((merged, Filter(scan, col("id") == 1))), 5)


def test_merge_keeps_predicate_order_and_does_not_deduplicate():
    plan = Filter(Filter(SCAN, col("a") > 1), col("a") > 1)
    assert merge_filters(plan) == Filter(SCAN, (col("a") > 1) & (col("a") > 1))
    swapped = Filter(SCAN, (col("b") == "x") & (col("a") > 1))
    assert merge_filters(Filter(Filter(SCAN, col("a") > 1), col("b") == "x")) != swapped

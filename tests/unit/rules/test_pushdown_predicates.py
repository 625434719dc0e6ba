"""Golden tests for predicate pushdown: through projections and unions, into scans, never past
a limit or map_batches."""

from __future__ import annotations

import pyarrow as pa

import sluice as sl
from sluice import col, when
from sluice.io.memory import ArrowSource, RangeSource
from sluice.plan.logical import Filter, Limit, MapBatches, Project, Scan, Union
from sluice.plan.rules.pushdown_predicates import push_predicates_down

SOURCE = ArrowSource(pa.table({"a": [1, 2, 3], "b": ["x", "y", None], "c": [1.0, 2.0, 3.0]}))
SCAN = Scan(SOURCE)


def identity(batch):
    return batch


def test_filter_goes_into_the_scan():
    plan = Filter(SCAN, col("a") > 1)
    assert push_predicates_down(plan) == Scan(SOURCE, predicates=(col("a") > 1,))
    assert push_predicates_down(plan).tree_string() == "Scan arrow (3 rows) filters=[(col('a') > 1)]"


def test_conjunction_is_split_into_scan_predicates():
    plan = Filter(SCAN, (col("a") > 1) & (col("b") == "x") & col("c").is_not_null())
    expected = Scan(SOURCE, predicates=(col("a") > 1, col("b") == "x", col("c").is_not_null()))
    assert push_predicates_down(plan) == expected


def test_disjunction_stays_whole():
    pred = (col("a") > 1) | (col("b") == "x")
    assert push_predicates_down(Filter(SCAN, pred)) == Scan(SOURCE, predicates=(pred,))


def test_filter_appends_to_existing_scan_predicates():
    plan = Filter(Scan(SOURCE, predicates=(col("a") > 1,)), col("c") < 3)
    assert push_predicates_down(plan) == Scan(SOURCE, predicates=(col("a") > 1, col("c") < 3))


def test_filter_on_a_computed_column_is_rewritten_through_with_columns():
    ds = sl.Dataset(SCAN).with_columns(d=col("a") * 2).filter(col("d") > 2)
    exprs = (col("a"), col("b"), col("c"), (col("a") * 2).alias("d"))
    expected = Project(Scan(SOURCE, predicates=((col("a") * 2) > 2,)), exprs)
    assert push_predicates_down(ds.plan) == expected


def test_filter_on_a_renamed_column_is_rewritten_to_the_source_name():
    ds = sl.Dataset(SCAN).rename({"a": "x"}).filter(col("x") >= 2)
    expected = Project(Scan(SOURCE, predicates=(col("a") >= 2,)), (col("a").alias("x"), col("b"), col("c")))
    assert push_predicates_down(ds.plan) == expected


def test_filter_through_when_expression():
    flag = when(col("a") > 1).then(col("c")).otherwise(0.0).alias("f")
    plan = Filter(Project(SCAN, (flag,)), col("f") > 0.5)
    expected = Project(Scan(SOURCE, predicates=(when(col("a") > 1).then(col("c")).otherwise(0.0) > 0.5,)), (flag,))
    assert push_predicates_down(plan) == expected


def test_filter_does_not_move_below_a_limit():
    plan = Filter(Limit(SCAN, 2), col("a") > 1)
    assert push_predicates_down(plan) is plan


def test_filter_does_not_go_into_a_scan_with_a_limit():
    plan = Filter(Scan(SOURCE, limit=2), col("a") > 1)
    assert push_predicates_down(plan) is plan


def test_filter_does_not_move_below_map_batches():
    plan = Filter(MapBatches(SCAN, identity), col("a") > 1)
    assert push_predicates_down(plan) is plan


def test_filter_below_projection_stops_at_limit():
    exprs = (col("a"), (col("c") + 1).alias("e"))
    plan = Filter(Project(Limit(SCAN, 2), exprs), col("e") > 2)
    assert push_predicates_down(plan) == Project(Filter(Limit(SCAN, 2), (col("c") + 1) > 2), exprs)


def test_filter_over_a_union_goes_into_every_branch_and_scan():
    left, right = Scan(RangeSource(0, 10)), Scan(RangeSource(5, 20))
    plan = Filter(Union((left, Project(right, (col("id"),)))), col("id") < 7)
    expected = Union((
        Scan(left.source, predicates=(col("id") < 7,)),
        Project(Scan(right.source, predicates=(col("id") < 7,)), (col("id"),)),
    ))
    assert push_predicates_down(plan) == expected


def test_filter_over_a_union_with_a_limited_branch():
    # The branch with the limit keeps the filter above its limit.
    source = RangeSource(0, 10)
    plan = Filter(Union((Scan(source), Limit(Scan(source), 3))), col("id") > 1)
    expected = Union((Scan(source, predicates=(col("id") > 1,)), Filter(Limit(Scan(source), 3), col("id") > 1)))
    assert push_predicates_down(plan) == expected


def test_whole_pipeline_pushes_within_two_applications():
    ds = (sl.Dataset(SCAN).with_columns(d=col("c") * 10).rename({"b": "name"})
          .filter(col("d") > 15).select("a", "name", "d").filter(col("name").is_not_null()))
    once = push_predicates_down(ds.plan)
    # The upper filter stops on the lower one (merge_filters joins them in optimize()).
    assert once.tree_string().count("Filter") == 1
    pushed = push_predicates_down(once)
    assert pushed.tree_string().splitlines()[-1] == (
        "      Scan arrow (3 rows) filters=[((col('c') * 10) > 15), col('b').is_not_null()]")
    assert "Filter" not in pushed.tree_string()

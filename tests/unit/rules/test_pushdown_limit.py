"""Golden tests for limit pushdown: below projections, into unions and scans, never past a filter."""

from __future__ import annotations

import pyarrow as pa

from sluice import col
from sluice.io.memory import ArrowSource, RangeSource
from sluice.plan.logical import Filter, Limit, MapBatches, Project, Scan, Union
from sluice.plan.reshape import RowIndex, Sample
from sluice.plan.rules.pushdown_limit import push_limits_down

SOURCE = ArrowSource(pa.table({"a": [1, 2, 3], "b": ["x", "y", None]}))
SCAN = Scan(SOURCE)


def identity(batch):
    return batch


def test_limit_reaches_the_scan_and_stays_on_top():
    plan = Limit(SCAN, 5)
    expected = Limit(Scan(SOURCE, limit=5), 5)
    assert push_limits_down(plan) == expected
    assert push_limits_down(plan).tree_string() == "Limit 5\n  Scan arrow (3 rows) limit=5"


def test_limit_moves_below_projections():
    exprs = (col("a"), (col("a") * 2).alias("d"))
    plan = Limit(Project(Project(SCAN, (col("a"), col("b"))), exprs), 2)
    expected = Project(Project(Limit(Scan(SOURCE, limit=2), 2), (col("a"), col("b"))), exprs)
    assert push_limits_down(plan) == expected


def test_limit_stops_at_a_filter():
    plan = Limit(Filter(SCAN, col("a") > 1), 2)
    assert push_limits_down(plan) is plan


def test_limit_stops_at_a_filter_below_a_projection():
    plan = Limit(Project(Filter(SCAN, col("a") > 1), (col("b"),)), 2)
    assert push_limits_down(plan) == Project(Limit(Filter(SCAN, col("a") > 1), 2), (col("b"),))


def test_limit_stops_at_map_batches():
    plan = Limit(MapBatches(SCAN, identity), 2)
    assert push_limits_down(plan) is plan


def test_limit_goes_into_every_union_input_and_stays_on_top():
    left, right = Scan(RangeSource(0, 100)), Scan(RangeSource(100, 200))
    plan = Limit(Union((left, right)), 7)
    expected = Limit(Union((Limit(Scan(left.source, limit=7), 7), Limit(Scan(right.source, limit=7), 7))), 7)
    assert push_limits_down(plan) == expected


def test_union_input_with_a_smaller_limit_is_kept():
    source = RangeSource(0, 100)
    plan = Limit(Union((Limit(Scan(source), 3), Filter(Scan(source), col("id") > 5))), 10)
    expected = Limit(Union((Limit(Scan(source, limit=3), 3), Limit(Filter(Scan(source), col("id") > 5), 10))), 10)
    assert push_limits_down(plan) == expected


def test_adjacent_limits_merge_to_the_smaller():
    # One application merges the two limits; the next pass (optimize loops) reaches the scan.
    for plan in (Limit(Limit(SCAN, 10), 3), Limit(Limit(SCAN, 3), 10)):
        once = push_limits_down(plan)
        assert once == Limit(SCAN, 3)
        assert push_limits_down(once) == Limit(Scan(SOURCE, limit=3), 3)


def test_scan_with_a_smaller_limit_is_unchanged():
    plan = Limit(Scan(SOURCE, limit=2), 5)
    assert push_limits_down(plan) is plan


def test_scan_with_a_larger_limit_takes_the_smaller():
    assert push_limits_down(Limit(Scan(SOURCE, limit=9), 4)) == Limit(Scan(SOURCE, limit=4), 4)


def test_limit_into_a_scan_with_predicates_keeps_them():
    # The scan applies its predicates before its limit, so this is safe.
    scan = Scan(SOURCE, predicates=(col("a") > 1,))
    assert push_limits_down(Limit(scan, 1)) == Limit(Scan(SOURCE, predicates=(col("a") > 1,), limit=1), 1)


def test_zero_limit():
    assert push_limits_down(Limit(SCAN, 0)) == Limit(Scan(SOURCE, limit=0), 0)



def test_limit_moves_below_a_row_index_but_not_below_a_sample():
    plan = Limit(RowIndex(SCAN, "i"), 2)
    assert push_limits_down(plan) == RowIndex(Limit(Scan(SOURCE, limit=2), 2), "i")
    sampled = Limit(Sample(SCAN, 0.5), 2)
    assert push_limits_down(sampled) == sampled

"""Golden tests for column pruning: the scan reads only what the plan uses."""

from __future__ import annotations

import pyarrow as pa

import sluice as sl
from sluice import col, lit
from sluice.io.memory import ArrowSource
from sluice.plan.logical import Filter, Limit, MapBatches, Project, Scan, Union
from sluice.plan.rules.prune_columns import prune_columns

TABLE = pa.table({"a": pa.array([1, 2], pa.int64()), "b": ["x", "y"], "c": [1.0, 2.0],
                  "t": pa.array([1, 2], pa.int8())})
SOURCE = ArrowSource(TABLE)
SCAN = Scan(SOURCE)


def identity(batch):
    return batch


def test_projection_narrows_the_scan():
    plan = Project(SCAN, (col("c"), col("a")))
    # The scan keeps the source order; the projection orders the output.
    assert prune_columns(plan) == Project(Scan(SOURCE, columns=("a", "c")), (col("c"), col("a")))
    assert prune_columns(plan).tree_string() == "Project [col('c'), col('a')]\n  Scan arrow (2 rows) columns=[a, c]"


def test_scan_at_the_root_is_unchanged():
    assert prune_columns(SCAN) is SCAN
    plan = Filter(SCAN, col("a") > 1)
    assert prune_columns(plan) is plan


def test_filter_keeps_the_columns_its_predicate_needs():
    plan = Project(Filter(SCAN, (col("b") == "x") & (col("t") > 0)), (col("c"),))
    expected = Project(Filter(Scan(SOURCE, columns=("b", "c", "t")), (col("b") == "x") & (col("t") > 0)), (col("c"),))
    assert prune_columns(plan) == expected


def test_unused_projection_outputs_are_dropped():
    ds = sl.Dataset(SCAN).with_columns(d=col("a") * 2, e=col("c") + 1).select("d")
    inner = Project(Scan(SOURCE, columns=("a",)), ((col("a") * 2).alias("d"),))
    assert prune_columns(ds.plan) == Project(inner, (col("d"),))


def test_columns_used_by_a_computed_output_are_kept():
    ds = sl.Dataset(SCAN).with_columns(d=col("a") + col("t")).select("b", "d")
    pruned = prune_columns(ds.plan)
    assert pruned.tree_string().splitlines()[-1].strip() == "Scan arrow (2 rows) columns=[a, b, t]"


def test_map_batches_needs_every_column():
    plan = Project(MapBatches(SCAN, identity), (col("a"),))
    assert prune_columns(plan) is plan


def test_pruning_stops_at_map_batches_but_continues_below_a_projection_under_it():
    plan = Project(MapBatches(Project(SCAN, (col("a"), col("b"))), identity), (col("a"),))
    expected = Project(MapBatches(Project(Scan(SOURCE, columns=("a", "b")), (col("a"), col("b"))), identity),
                       (col("a"),))
    assert prune_columns(plan) == expected


def test_limit_passes_required_columns_through():
    plan = Project(Limit(SCAN, 1), (col("b"),))
    assert prune_columns(plan) == Project(Limit(Scan(SOURCE, columns=("b",)), 1), (col("b"),))


def test_every_union_branch_is_pruned():
    other = ArrowSource(TABLE)
    plan = Project(Union((SCAN, Project(Scan(other), (col("a"), col("b"), col("c"), col("t"))))), (col("c"),))
    expected = Project(Union((Scan(SOURCE, columns=("c",)), Project(Scan(other, columns=("c",)), (col("c"),)))),
                       (col("c"),))
    assert prune_columns(plan) == expected


def test_when_no_column_is_needed_the_narrowest_is_read():
    plan = Project(SCAN, (lit(1).alias("one"),))
    assert prune_columns(plan) == Project(Scan(SOURCE, columns=("t",)), (lit(1).alias("one"),))


def test_existing_scan_columns_are_only_narrowed():
    plan = Project(Scan(SOURCE, columns=("a", "b")), (col("b"),))
    assert prune_columns(plan) == Project(Scan(SOURCE, columns=("b",)), (col("b"),))


def test_scan_predicate_columns_need_not_be_read_as_output():
    # A pushed predicate on `a` is applied by the source; `a` is not an output column.
    plan = Project(Scan(SOURCE, predicates=(col("a") > 1,)), (col("b"),))
    expected = Project(Scan(SOURCE, columns=("b",), predicates=(col("a") > 1,)), (col("b"),))
    assert prune_columns(plan) == expected
    assert sl.Dataset(plan).to_arrow().column("b").to_pylist() == ["y"]


def test_reshaping_nodes_read_what_decides_their_rows():
    from sluice.plan.reshape import Explode, RowIndex, Sample, Unpivot
    lists = ArrowSource(pa.table({"a": [1], "l": [[1, 2]], "b": ["x"]}))
    exploded = Project(Explode(Scan(lists), ("l",)), (col("a"),))
    assert prune_columns(exploded) == Project(Explode(Scan(lists, columns=("a", "l")), ("l",)), (col("a"),))
    numbered = Project(Sample(RowIndex(SCAN, "i"), 0.5), (col("i"), col("b")))
    assert prune_columns(numbered) == Project(Sample(RowIndex(Scan(SOURCE, columns=("b",)), "i"), 0.5),
                                              (col("i"), col("b")))
    unpivoted = Project(Unpivot(SCAN, ("a", "t"), ("b",)), (col("value"),))
    assert prune_columns(unpivoted) == Project(Unpivot(Scan(SOURCE, columns=("a", "b", "t")), ("a", "t"), ("b",)),
                                               (col("value"),))

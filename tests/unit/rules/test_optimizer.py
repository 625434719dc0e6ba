"""The optimizer driver: rule order, and running the rules until the plan stops changing."""

from __future__ import annotations

import pyarrow as pa

import sluice as sl
from sluice import col, lit
from sluice.io.memory import ArrowSource
from sluice.plan import optimizer
from sluice.plan.logical import Limit, Project, Scan
from sluice.plan.optimizer import RULES, optimize
from sluice.plan.rules.constant_folding import fold_constants
from sluice.plan.rules.merge_filters import merge_filters
from sluice.plan.rules.merge_projections import merge_projections
from sluice.plan.rules.prune_columns import prune_columns
from sluice.plan.rules.pushdown_limit import push_limits_down
from sluice.plan.rules.pushdown_predicates import push_predicates_down

SOURCE = ArrowSource(pa.table({"a": [1, 2, 3], "b": ["x", "y", None], "c": [1.0, 2.0, 3.0]}))
SCAN = Scan(SOURCE)


def pipeline() -> sl.Dataset:
    return (sl.Dataset(SCAN).with_columns(d=col("a") * (lit(2) + lit(1))).filter(col("d") > 3)
            .rename({"b": "name"}).filter(col("name").is_not_null() & lit(True)).select("name", "d").limit(2))


def test_rules_order():
    order = [r.__name__ for r in RULES]
    for rule in (fold_constants, merge_filters, push_predicates_down, merge_projections, push_limits_down,
                 prune_columns):
        assert rule in RULES
    # Folding first (simpler predicates push further); filters merge before they are pushed;
    # predicates move before limits (a pushed limit would block them); pruning last, once the
    # plan's shape is final.
    assert order.index("fold_constants") == 0
    assert order.index("merge_filters") < order.index("push_predicates_down")
    assert order.index("push_predicates_down") < order.index("push_limits_down")
    assert order.index("push_predicates_down") < order.index("merge_projections")
    assert order[-1] == "prune_columns"


def test_optimize_golden_plan():
    optimized = optimize(pipeline().plan)
    expected = Project(
        Limit(Scan(SOURCE, columns=("a", "b"), predicates=((col("a") * 3) > 3, col("b").is_not_null()), limit=2), 2),
        (col("b").alias("name"), (col("a") * 3).alias("d")))
    assert optimized == expected, optimized.tree_string()


def test_optimize_reaches_a_fixpoint():
    optimized = optimize(pipeline().plan)
    assert optimize(optimized) == optimized
    for rule in RULES:
        assert rule(optimized) == optimized, rule.__name__


def test_optimize_stops_after_max_passes_on_a_rule_that_never_settles():
    calls = []

    def flip(plan):
        calls.append(1)
        return Limit(plan.input, plan.n + 1) if isinstance(plan, Limit) else plan

    result = optimize(Limit(SCAN, 0), rules=(flip,))
    assert len(calls) == optimizer.MAX_PASSES
    assert result == Limit(SCAN, optimizer.MAX_PASSES)


def test_optimize_stops_as_soon_as_nothing_changes():
    calls = []

    def count(plan):
        calls.append(1)
        return plan

    optimize(Limit(SCAN, 1), rules=(count,))
    assert len(calls) == 1


def test_optimized_and_written_plans_agree_on_the_result():
    ds = pipeline()
    assert ds.to_arrow().to_pylist() == [{"name": "y", "d": 6}]

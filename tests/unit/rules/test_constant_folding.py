"""Golden tests for the constant-folding rule: input plan -> expected plan, no execution."""

from __future__ import annotations

import pyarrow as pa

from sluice import col, lit, when
from sluice.expr.compile import to_arrow_filter
from sluice.expr.tree import Alias, Literal
from sluice.io.memory import ArrowSource
from sluice.plan.logical import Filter, Limit, Project, Scan
from sluice.plan.rules.constant_folding import fold_constants, fold_expression

SOURCE = ArrowSource(pa.table({"a": [1, 2, 3], "b": ["x", "y", None], "c": [1.0, 2.0, 3.0]}))
SCAN = Scan(SOURCE)


def test_arithmetic_on_literals_folds_in_a_filter():
    plan = Filter(SCAN, col("a") > lit(2) * 3)
    expected = Filter(SCAN, col("a") > 6)
    assert fold_constants(plan) == expected
    assert fold_constants(plan).tree_string() == "Filter (col('a') > 6)\n  Scan arrow (3 rows)"


def test_folding_is_bottom_up_through_nested_literals():
    plan = Filter(SCAN, col("c") < (lit(1) + lit(2)) * (lit(10) - lit(4)))
    assert fold_constants(plan) == Filter(SCAN, col("c") < 18)


def test_no_reassociation_across_a_column():
    # (a + 1) + 2 has no literal-only subexpression: left as written.
    plan = Project(SCAN, ((col("a") + 1 + 2).alias("x"),))
    assert fold_constants(plan) is plan


def test_literal_subexpression_under_a_column_op_folds():
    plan = Project(SCAN, ((col("a") + (lit(1) + lit(2))).alias("x"),))
    assert fold_constants(plan) == Project(SCAN, ((col("a") + 3).alias("x"),))


def test_and_true_is_identity():
    p = col("a") > 1
    assert fold_constants(Filter(SCAN, p & True)) == Filter(SCAN, col("a") > 1)
    assert fold_constants(Filter(SCAN, lit(True) & p)) == Filter(SCAN, col("a") > 1)


def test_or_false_is_identity():
    p = col("b") == "x"
    assert fold_constants(Filter(SCAN, p | False)) == Filter(SCAN, col("b") == "x")
    assert fold_constants(Filter(SCAN, lit(False) | p)) == Filter(SCAN, col("b") == "x")


def test_folded_predicates_stay_pushable():
    # Folding a predicate must not wrap it in an alias: a filter has no output name, and an
    # aliased predicate no longer compiles to a pyarrow filter, so it cannot prune the scan.
    for predicate in (lit(True) & (col("a") == 1), (col("a") == 1) & (lit(1) == lit(1)),
                      (col("a") > 1) & lit(False), lit(False) | (col("a") == 1)):
        folded = fold_constants(Filter(SCAN, predicate))
        assert isinstance(folded, Filter) and not isinstance(folded.predicate, Alias), folded.predicate
        assert to_arrow_filter(folded.predicate, SCAN.schema) is not None, folded.predicate
    scan = fold_constants(Scan(SOURCE, predicates=(lit(True) & (col("a") == 1),)))
    assert scan == Scan(SOURCE, predicates=(col("a") == 1,))


def test_and_false_and_or_true_absorb():
    p = col("a") > 1
    assert fold_constants(Filter(SCAN, p & False)) == Filter(SCAN, lit(False))
    # p | True is True, so the whole filter disappears.
    assert fold_constants(Filter(SCAN, p | True)) == SCAN


def test_filter_folding_to_true_disappears():
    assert fold_constants(Filter(SCAN, lit(1) < lit(2))) == SCAN
    assert fold_constants(Filter(SCAN, ~lit(False))) == SCAN
    nested = Limit(Filter(Filter(SCAN, lit(True)), (col("a") > 0) | lit(True)), 3)
    assert fold_constants(nested) == Limit(SCAN, 3)


def test_filter_folding_to_false_stays():
    plan = Filter(SCAN, lit(2) > lit(3))
    assert fold_constants(plan) == Filter(SCAN, lit(False))
    assert fold_constants(plan).tree_string() == "Filter False\n  Scan arrow (3 rows)"


def test_not_of_literal_folds():
    assert fold_expression(~lit(True)).same_as(lit(False))
    assert fold_expression(~~lit(True)).same_as(lit(True))


def test_folded_expression_keeps_its_output_name():
    # An aliased literal expression keeps the alias, and nothing else is renamed.
    plan = Project(SCAN, (col("a"), (lit(2) * 3).alias("six")))
    folded = fold_constants(plan)
    assert folded == Project(SCAN, (col("a"), lit(6).alias("six")))
    assert folded.schema.names == ["a", "six"]


def test_folding_that_changes_a_projection_name_adds_an_alias():
    # `True & p` is named "literal" after its first operand; folded to `p` it would be named "a".
    plan = Project(SCAN, (col("c"), lit(True) & (col("a") > 1)))
    folded = fold_constants(plan)
    assert folded == Project(SCAN, (col("c"), Alias(col("a") > 1, "literal")))
    assert folded.schema.names == plan.schema.names == ["c", "literal"]


def test_literal_only_when_folds():
    expr = when(lit(1) > lit(2)).then(lit(10)).otherwise(lit(20))
    folded = fold_expression(expr)
    assert isinstance(folded, Literal) and folded.value == 20


def test_folding_inside_when_and_calls():
    expr = when(col("a") > lit(1) + lit(1)).then(col("c") * (lit(2) * lit(2))).otherwise(lit(0.5) + lit(0.5))
    plan = Project(SCAN, (expr.alias("w"),))
    expected = Project(SCAN, (when(col("a") > 2).then(col("c") * 4).otherwise(lit(1.0)).alias("w"),))
    assert fold_constants(plan) == expected
    assert fold_constants(Filter(SCAN, col("a").is_in([1, 2]) & lit(3).is_in([3]))) == Filter(
        SCAN, col("a").is_in([1, 2]))


def test_scan_predicates_fold_and_true_ones_are_dropped():
    scan = Scan(SOURCE, predicates=(col("a") > lit(1) + lit(1), lit(True), (col("c") < 2) & lit(True)))
    assert fold_constants(scan) == Scan(SOURCE, predicates=(col("a") > 2, col("c") < 2))


def test_nothing_to_fold_returns_the_same_nodes():
    plan = Limit(Project(Filter(SCAN, col("a") > 1), (col("a"), (col("c") * 2).alias("d"))), 5)
    assert fold_constants(plan) is plan


def test_folding_reaches_every_level():
    plan = Limit(Project(Filter(SCAN, col("a") > lit(1) + 1), ((col("c") * (lit(3) - 1)).alias("d"),)), 5)
    expected = Limit(Project(Filter(SCAN, col("a") > 2), ((col("c") * 2).alias("d"),)), 5)
    assert fold_constants(plan) == expected
    assert fold_constants(plan).tree_string() == (
        "Limit 5\n  Project [(col('c') * 2).alias('d')]\n    Filter (col('a') > 2)\n      Scan arrow (3 rows)")


def test_null_literal_and_true_is_null_not_dropped():
    # null & True is null (drops every row), so the filter must not disappear.
    plan = Filter(SCAN, lit(None) & lit(True))
    folded = fold_constants(plan)
    assert folded != SCAN
    assert isinstance(folded, Filter) and isinstance(folded.predicate, Literal) and folded.predicate.value is None

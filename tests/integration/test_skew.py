"""A join where one key holds 30% of a 20M-row fact table: adaptive execution splits the hot
partition so no reduce task reads more than twice the median task's rows, reports the hot key,
and the result equals DuckDB's. With adaptive execution off, the imbalance shows in stats()."""

from statistics import median

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import sluice as sl
from sluice import col, count
from sluice.config import _overrides

# what these tests check happens in exchanges: plan them even for small inputs (no fusion)
pytestmark = pytest.mark.usefixtures("staged")

FACT_ROWS = 20_000_000
DIM_ROWS = 1_000_000
HOT_KEY = 7


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(11)
    keys = rng.integers(0, DIM_ROWS, FACT_ROWS)
    keys[rng.random(FACT_ROWS) < 0.30] = HOT_KEY
    fact = pa.table({"k": keys, "amount": rng.random(FACT_ROWS)})
    dim = pa.table({"k": np.arange(DIM_ROWS, dtype=np.int64), "weight": rng.random(DIM_ROWS)})
    return fact, dim


def join_task_rows(stats) -> list[int]:
    """Rows read by each reduce task of the join: the stage whose tasks read the most rows."""
    return stats.reduce_tasks[max(stats.reduce_tasks, key=lambda s: sum(stats.reduce_tasks[s]))]


def run_join(fact, dim, adaptive: bool):
    try:
        sl.configure(adaptive=adaptive)
        joined = sl.from_arrow(fact).join(sl.from_arrow(dim), on="k", strategy="shuffle")
        totals = joined.agg(n=count(), amount=col("amount").sum(), weight=col("weight").sum())
        return totals.to_arrow().to_pylist()[0], totals
    finally:
        _overrides.pop("adaptive", None)


@pytest.mark.slow
def test_adaptive_split_bounds_the_slowest_task_and_matches_duckdb(tables, runner):
    fact, dim = tables
    result, dataset = run_join(fact, dim, adaptive=True)
    stats = dataset.stats()
    rows = join_task_rows(stats)
    assert max(rows) <= 2 * median(rows), f"slowest task {max(rows):,} rows, median {median(rows):,.0f}"
    assert any("split skewed partition" in note for note in stats.notes)
    hot = [k for k in stats.skewed_keys if k["key"] == {"k": HOT_KEY}]
    assert hot and hot[0]["rows"] > 0.25 * FACT_ROWS
    expected = duckdb.sql("SELECT count(*) AS n, sum(amount) AS amount, sum(weight) AS weight "
                          "FROM fact JOIN dim USING (k)").fetchall()[0]
    assert result["n"] == expected[0]
    assert result["amount"] == pytest.approx(expected[1], rel=1e-9)
    assert result["weight"] == pytest.approx(expected[2], rel=1e-9)


@pytest.mark.slow
def test_without_adaptive_execution_the_imbalance_is_visible(tables, runner):
    fact, dim = tables
    _, dataset = run_join(fact, dim, adaptive=False)
    stats = dataset.stats()
    rows = join_task_rows(stats)
    assert max(rows) > 10 * median(rows)
    assert not stats.skewed_keys

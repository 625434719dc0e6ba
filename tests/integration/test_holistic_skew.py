"""Holistic aggregates (count_distinct, median, quantile) on a skewed key: two-level split.

One key holds half the rows. With adaptive execution, its partition is sliced by value
(hash for count_distinct, ranges for median/quantile), aggregated in parallel and merged
exactly, so no reduce task reads much more than the median task; results equal DuckDB's.
When a split cannot be exact (holistic aggregates over two columns), the partition runs
whole and stats() says why.
"""

from statistics import median

import numpy as np
import pyarrow as pa
import pytest
from conftest import assert_same, q

import sluice as sl
from sluice import col, count

# what these tests check happens in exchanges: plan them even for small inputs (no fusion)
pytestmark = pytest.mark.usefixtures("staged")

ROWS = 200_000
HOT = 7


def skewed_table(seed: int = 0, hot_values_null: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    keys = np.where(rng.random(ROWS) < 0.5, HOT, rng.integers(0, 400, ROWS))
    value = rng.integers(0, 50_000, ROWS).astype(np.float64)
    null = rng.random(ROWS) < 0.05
    if hot_values_null:
        null |= keys == HOT
    users = np.array([f"user-{i}" for i in range(30_000)])[rng.integers(0, 30_000, ROWS)]
    return pa.table({"k": keys, "v": pa.array(value, mask=null), "user": users,
                     "n": rng.integers(0, 100, ROWS)})


@pytest.fixture(autouse=True)
def small_partitions(runner):
    sl.configure(target_partition_bytes="64KiB", skew_min_bytes="64KiB", adaptive=True)


def task_rows(dataset) -> list[int]:
    stats = dataset.stats()
    return stats.reduce_tasks[max(stats.reduce_tasks)]


def test_count_distinct_on_a_hot_key_splits_by_value_hash_and_matches_duckdb(duck):
    table = skewed_table()
    ds = sl.from_arrow(table).group_by("k").agg(users=col("user").count_distinct(), rows=count(),
                                                total=col("n").sum())
    got = ds.to_arrow()
    expected = q(duck, "SELECT k, count(DISTINCT user) AS users, count(*) AS rows, CAST(sum(n) AS BIGINT) AS total "
                       "FROM t GROUP BY k", t=table)
    assert_same(got, expected)
    notes = " ".join(ds.stats().notes)
    assert "by value hash, aggregated in two levels" in notes
    rows = task_rows(ds)
    assert max(rows) <= 2 * median(rows), f"slowest task {max(rows):,} rows, median {median(rows):,.0f}"
    assert any(k["key"] == {"k": HOT} for k in ds.stats().skewed_keys)


@pytest.mark.parametrize("hot_values_null", [False, True])
def test_median_and_quantiles_on_a_hot_key_split_by_value_range_and_match_duckdb(duck, hot_values_null):
    table = skewed_table(1, hot_values_null)
    ds = sl.from_arrow(table).group_by("k").agg(
        med=col("v").median(), p90=col("v").quantile(0.9), lo=col("v").quantile(0.0), hi=col("v").quantile(1.0),
        distinct=col("v").count_distinct(), values=col("v").count(), mean=col("n").mean())
    got = ds.to_arrow()
    expected = q(duck, """
        SELECT k, quantile_cont(v, 0.5) AS med, quantile_cont(v, 0.9) AS p90, quantile_cont(v, 0.0) AS lo,
               quantile_cont(v, 1.0) AS hi, count(DISTINCT v) AS distinct, count(v) AS values, avg(n) AS mean
        FROM t GROUP BY k""", t=table)
    assert_same(got, expected)
    assert "by value range, aggregated in two levels" in " ".join(ds.stats().notes)
    rows = task_rows(ds)
    assert max(rows) <= 2 * median(rows), (ds.stats().notes, sorted(rows))


def test_holistic_aggregates_over_two_columns_run_whole_and_say_why(duck):
    table = skewed_table(2)
    ds = sl.from_arrow(table).group_by("k").agg(med=col("v").median(), users=col("user").count_distinct())
    got = ds.to_arrow()
    expected = q(duck, "SELECT k, quantile_cont(v, 0.5) AS med, count(DISTINCT user) AS users FROM t GROUP BY k",
                 t=table)
    assert_same(got, expected)
    assert any("not split: its holistic aggregates read different columns" in n for n in ds.stats().notes)


def test_without_adaptive_the_hot_key_is_one_task():
    sl.configure(adaptive=False)
    ds = sl.from_arrow(skewed_table(3)).group_by("k").agg(users=col("user").count_distinct())
    ds.to_arrow()
    rows = task_rows(ds)
    assert max(rows) > 10 * median(rows)

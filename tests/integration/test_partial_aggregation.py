"""Partial aggregation that stops grouping when it does not pay gives the same answers.

When the keys are nearly unique within blocks, the map side sends each row as its own partial
state instead of grouping. Forced on from the first block here, every two-phase aggregate (with
nulls, empty groups, several blocks and types) must still match DuckDB.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import assert_same, q

import sluice as sl
from sluice import col
from sluice.physical import exchange

# what these tests check happens in exchanges: plan them even for small inputs (no fusion)
pytestmark = pytest.mark.usefixtures("staged")


def _table(rows: int, keys: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    nulls = rng.random(rows) < 0.2
    return pa.table({
        "k": pa.array(rng.integers(0, keys, rows)),
        "s": pa.array(np.where(rng.random(rows) < 0.1, None, rng.choice(["a", "b", None], rows)).tolist()),
        "i": pa.array(rng.integers(-50, 50, rows).astype(np.int32), mask=nulls),
        "f": pa.array(rng.normal(size=rows), mask=rng.random(rows) < 0.3),
    })


@pytest.mark.parametrize("keys", [5, 3000])
@pytest.mark.parametrize("probe_rows", [0, 10**12])  # each row its own partial state / always group
def test_every_two_phase_aggregate_matches_duckdb(runner, duck, monkeypatch, keys, probe_rows):
    monkeypatch.setattr(exchange, "PARTIAL_PROBE_ROWS", probe_rows)
    monkeypatch.setattr(exchange, "PARTIAL_MIN_REDUCTION", 0.0 if probe_rows == 0 else 1.1)
    table = _table(4000, keys, seed=keys)
    ds = sl.from_arrow(table).repartition(7).group_by("k", "s").agg(
        n=sl.count(), c=col("i").count(), si=col("i").sum(), mi=col("i").mean(), sf=col("f").sum(),
        lo=col("f").min(), hi=col("i").max(), sd=col("f").std(), va=col("i").var())
    expected = q(duck, "SELECT k, s, count(*) AS n, count(i) AS c, sum(i) AS si, avg(i) AS mi, sum(f) AS sf, "
                       "min(f) AS lo, max(i) AS hi, stddev_samp(f) AS sd, var_samp(i) AS va FROM t GROUP BY k, s",
                 t=table)
    assert_same(ds.to_arrow(), expected, check_types=False, rel=1e-7)
    if runner != "local":
        return  # the monkeypatched thresholds live in this process; Ray workers have their own
    partial = [op for op in ds.stats().operator_list() if op.name == "PartialAggregate"]
    assert partial and (partial[0].rows_out == 4000 if probe_rows == 0 else partial[0].rows_out < 4000)


def test_grouping_stops_when_keys_are_unique(runner, monkeypatch):
    monkeypatch.setattr(exchange, "PARTIAL_PROBE_ROWS", 1000)
    table = pa.table({"k": np.arange(20_000), "v": np.ones(20_000)})
    ds = sl.from_arrow(table).repartition(10).group_by("k").agg(total=col("v").sum())
    assert ds.count() == 20_000
    partial = [op for op in ds.stats().operator_list() if op.name == "PartialAggregate"]
    # grouping was tried on the first blocks, then rows went through as they were
    assert partial[0].rows_out == 20_000


def test_a_filter_and_projection_run_in_the_partial_aggregates_query_and_keep_their_figures(runner, duck):
    """The map side's last filter/projection and the partial aggregate are one Polars query per task:
    the answer is DuckDB's, and the stats still give the filter's rows in and out."""
    table = _table(6000, 40, 7)
    opaque = sl.from_arrow(table).repartition(3).map_batches(lambda batch: batch, compute="threads")
    ds = opaque.filter(col("i") > 0).with_columns(j=col("i") * 2).group_by("k").agg(n=sl.count(), total=col("j").sum())
    expected = q(duck, "SELECT k, count(*) AS n, sum(i * 2) AS total FROM t WHERE i > 0 GROUP BY k", t=table)
    assert_same(ds.to_arrow(), expected, check_types=False)
    ops = {op.name: op for op in ds.stats().operator_list()}
    kept = q(duck, "SELECT count(*) AS n FROM t WHERE i > 0", t=table).column("n")[0].as_py()
    step = ops["Filter+Select"]
    assert (step.rows_in, step.rows_out) == (6000, kept)
    assert ops["PartialAggregate"].rows_in == kept


def test_a_bad_row_in_the_fused_map_side_is_quarantined_alone(runner, tmp_path):
    """When the fused query fails on a value (a cast), the step runs alone and bisects to the bad row."""
    table = pa.table({"k": [i % 5 for i in range(2000)], "s": [str(i) if i != 777 else "oops" for i in range(2000)]})
    ds = sl.from_arrow(table).repartition(2).with_columns(v=col("s").cast("int64")).group_by("k").agg(
        total=col("v").sum())
    result = {row["k"]: row["total"] for row in ds.to_arrow().to_pylist()}
    expected: dict[int, int] = {}
    for i in range(2000):
        if i != 777:
            expected[i % 5] = expected.get(i % 5, 0) + i
    assert result == expected
    letters = ds.bad_records().to_arrow().to_pylist()
    assert len(letters) == 1 and '"oops"' in letters[0]["record_json"]

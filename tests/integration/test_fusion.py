"""In-memory fusion (plan/fusion.py): a subtree of joins and aggregations over inputs far under
the memory budget runs as one Polars query, with the same answer as the staged plan and DuckDB.

The Hypothesis properties in test_wide_properties.py draw fusion on and off; TPC-H runs both
ways in test_tpch.py. Here: when fusion applies and when it does not, what explain() says, a
fused stage feeding a write, and a bad row inside a fused query, which falls back to the staged
plan so that the row is quarantined exactly as without fusion.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_same, q

import sluice as sl
from sluice import col
from sluice import config as sluice_config
from sluice.plan.optimizer import optimize
from sluice.physical.planner import plan_physical
from sluice.physical.stages import FusedStage


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(11)
    n = 20_000
    facts = pa.table({"k": rng.integers(0, 50, n), "v": rng.random(n), "code": [str(i % 97) for i in range(n)]})
    dims = pa.table({"k": np.arange(50), "name": [f"d{i % 7}" for i in range(50)]})
    pq.write_table(facts, tmp_path / "facts.parquet", row_group_size=4_000)
    pq.write_table(dims, tmp_path / "dims.parquet")
    return tmp_path / "facts.parquet", tmp_path / "dims.parquet"


def pipeline(facts, dims):
    return (sl.read_parquet(facts).join(sl.read_parquet(dims), on="k")
            .group_by("name").agg(total=col("v").sum(), n=sl.count())
            .sort("name"))


SQL = ("SELECT name, sum(v) AS total, count(*) AS n FROM read_parquet('{facts}') f JOIN read_parquet('{dims}') d "
       "USING (k) GROUP BY name ORDER BY name")


def test_a_small_join_and_aggregate_runs_as_one_fused_query(runner, duck, files):
    facts, dims = files
    ds = pipeline(facts, dims)
    result = ds.to_arrow()
    assert_same(result, q(duck, SQL.format(facts=facts, dims=dims)), ordered=True)
    physical = ds.explain(show=False).split("== Physical plan ==")[1]
    if runner == "local":
        assert "Fused" in physical and "fused: one in-memory Polars query (inputs est." in physical
        assert "exchange:" not in physical and "join strategy" not in physical
        assert [op for (_, op) in ds.stats().operators].count("PolarsQuery") == 1
    else:  # the Ray runner moves blocks between workers: it never fuses
        assert "Fused" not in physical and "join strategy" in physical


def test_fusion_off_or_inputs_over_the_threshold_plan_exchanges(runner, duck, files):
    facts, dims = files
    expected = q(duck, SQL.format(facts=facts, dims=dims))
    sl.configure(fuse_fraction=0)
    staged = pipeline(facts, dims)
    assert "Fused" not in staged.explain(show=False) and "join strategy" in staged.explain(show=False)
    assert_same(staged.to_arrow(), expected, ordered=True)

    sl.configure(fuse_fraction=0.001, memory_budget="64MiB")  # the inputs (~110 KiB) are over 64 MiB / 1000
    over = pipeline(facts, dims)
    assert "Fused" not in over.explain(show=False)
    assert_same(over.to_arrow(), expected, ordered=True)


def test_a_fused_query_over_a_udf_input_feeds_a_write(runner, duck, files, tmp_path):
    facts, dims = files
    scored = sl.read_parquet(facts).map_batches(lambda b: b.assign(v2=b["v"] * 2), batch_format="pandas")
    totals = scored.join(sl.read_parquet(dims), on="k").group_by("name", "k").agg(s=col("v2").sum())
    assert ("Fused" in totals.explain(show=False)) == (runner == "local")  # the UDF's output is an input
    totals.write_parquet(tmp_path / "out")
    assert_same(sl.read_parquet(tmp_path / "out").to_arrow(),
                q(duck, f"SELECT name, k, sum(2 * v) AS s FROM read_parquet('{facts}') f "
                        f"JOIN read_parquet('{dims}') d USING (k) GROUP BY name, k"))


def test_a_bad_row_in_a_fused_query_is_quarantined_as_in_the_staged_plan(runner, files):
    facts, dims = files
    sl.configure(max_bad_records=10)
    # after the join, "code" holds "0".."96" and one row "x": its cast fails inside the fused query
    bad = pa.table({"k": [3], "v": [1.0], "code": ["x"]})
    facts_ds = sl.read_parquet(facts).union(sl.from_arrow(bad))
    ds = (facts_ds.join(sl.read_parquet(dims), on="k")
          .with_columns(n=col("code").cast("int64"))
          .group_by("name").agg(total=col("n").sum()))
    result = ds.to_arrow()
    table = pq.read_table(facts)
    names = {k: f"d{k % 7}" for k in range(50)}
    expected: dict[str, int] = {}
    for k, code in zip(table["k"].to_pylist(), table["code"].to_pylist()):
        expected[names[k]] = expected.get(names[k], 0) + int(code)
    assert dict(zip(result["name"].to_pylist(), result["total"].to_pylist())) == expected
    records = ds.bad_records().to_arrow().to_pylist()
    assert len(records) == 1 and '"code": "x"' in records[0]["record_json"]
    if runner == "local":
        assert any("the fused query failed" in note for note in ds.stats().notes)


def test_only_the_local_runner_fuses():
    local = dataclasses.replace(sluice_config.current(), runner="local")
    ray = dataclasses.replace(local, runner="ray")
    plan = optimize(sl.range(1000).join(sl.range(10), on="id").group_by("id").agg(n=sl.count())._plan)
    assert isinstance(plan_physical(plan, local).root, FusedStage)
    assert not any(isinstance(stage, FusedStage) for stage in plan_physical(plan, ray).stages())

"""TPC-H at SF 0.1: the 22 sluice queries of bench/tpch/queries.py against DuckDB running the
official SQL text of bench/tpch/sql/qNN.sql over the same Parquet files.

Data comes from `tpchgen-cli` (a dev dependency) once per session (per xdist worker; about
two seconds). Results are compared as multisets of rows by `assert_same`, after casting
decimals to float64 on both sides (integral decimals, e.g. DuckDB's sum of an integer, to
int64), with a relative tolerance: sluice may compute in floats where DuckDB is exact. For
each query with ORDER BY, the ORDER BY columns are also compared in order, so row order is
checked wherever the spec determines it, without depending on how ties come out.

On the local runner every query runs twice: fused (the default at this size: each query's
joins and aggregations become one in-memory Polars query, plan/fusion.py) and staged
(`fuse_fraction=0`: exchanges, broadcast joins, partial aggregation), so both paths stay correct.
"""

from __future__ import annotations

import pytest
from tpch_support import SQL_DIR, assert_same_answer, tpch_dir, tpch_duck  # noqa: F401 (fixtures)

import sluice as sl
from bench.tpch.queries import QUERIES, load_tables


@pytest.mark.parametrize("plan", ["fused", "staged"])
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_tpch_query(runner, name, plan, tpch_dir, tpch_duck):  # noqa: F811
    if plan == "staged":
        sl.configure(fuse_fraction=0)
    elif runner != "local":
        pytest.skip("only the local runner fuses; the ray runner's run is the staged one")
    actual = QUERIES[name](load_tables(tpch_dir)).to_arrow()
    expected = tpch_duck.sql((SQL_DIR / f"{name}.sql").read_text()).to_arrow_table()
    assert_same_answer(name, actual, expected)

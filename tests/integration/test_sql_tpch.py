"""The 22 TPC-H query texts of bench/tpch/sql/ (the spec's text with its validation parameters), unmodified,
run through `sluice.sql` at SF 0.1 and compared with DuckDB running the same text on the same Parquet files.

Rows are compared as multisets (decimals as float64 on both sides, with a relative tolerance), and the
ORDER BY columns of each query also in order. On the local runner every query runs fused and staged
(`fuse_fraction=0`), as tests/integration/test_tpch.py does for the Dataset-API versions.
"""

from __future__ import annotations

import pytest
from conftest import assert_same
from tpch_support import (  # noqa: F401 (tpch_dir, tpch_duck: fixtures)
    ABS, REL, SQL_DIR, TABLES, assert_same_answer, decimals_to_float, tpch_dir, tpch_duck,
)

import sluice as sl

pytest.importorskip("sqlglot")

QUERIES = sorted(p.stem for p in SQL_DIR.glob("q*.sql"))


@pytest.mark.parametrize("plan", ["fused", "staged"])
@pytest.mark.parametrize("name", QUERIES)
def test_tpch_sql_text_matches_duckdb(runner, name, plan, tpch_dir, tpch_duck):  # noqa: F811
    if plan == "staged":
        sl.configure(fuse_fraction=0)
    elif runner != "local":
        pytest.skip("only the local runner fuses; the ray runner's run is the staged one")
    text = (SQL_DIR / f"{name}.sql").read_text()
    tables = {t: str(tpch_dir / f"{t}.parquet") for t in TABLES}
    assert_same_answer(name, sl.sql(text, tables).to_arrow(), tpch_duck.sql(text).to_arrow_table())


def test_official_q15_with_create_view_runs_as_one_text(tpch_dir, tpch_duck):  # noqa: F811
    """The spec's Q15 makes a view, queries it and drops it: three statements in one text."""
    text = """
    create view revenue0 (supplier_no, total_revenue) as
        select l_suppkey, sum(l_extendedprice * (1 - l_discount))
        from lineitem
        where l_shipdate >= date '1996-01-01' and l_shipdate < date '1996-01-01' + interval '3' month
        group by l_suppkey;
    select s_suppkey, s_name, s_address, s_phone, total_revenue
    from supplier, revenue0
    where s_suppkey = supplier_no and total_revenue = (select max(total_revenue) from revenue0)
    order by s_suppkey;
    drop view revenue0;
    """
    tables = {t: str(tpch_dir / f"{t}.parquet") for t in TABLES}
    actual = decimals_to_float(sl.sql(text, tables).to_arrow())
    expected = decimals_to_float(tpch_duck.sql((SQL_DIR / "q15.sql").read_text()).to_arrow_table())
    assert expected.num_rows > 0
    assert_same(actual, expected, ordered=True, rel=REL, abs_=ABS)

"""The 22 TPC-H query texts of bench/tpch/sql/ (the spec's text with its validation parameters), unmodified,
run through `sluice.sql` at SF 0.1 and compared with DuckDB running the same text on the same Parquet files.

Rows are compared as multisets (decimals as float64 on both sides, with a relative tolerance), and the
ORDER BY columns of each query also in order. On the local runner every query runs fused and staged
(`fuse_fraction=0`), as tests/integration/test_tpch.py does for the Dataset-API versions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import assert_same, sqlpath

import sluice as sl

pytest.importorskip("sqlglot")

REPO = Path(__file__).resolve().parents[2]
SQL_DIR = REPO / "bench" / "tpch" / "sql"
TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")
SCALE = 0.1
QUERIES = sorted(p.stem for p in SQL_DIR.glob("q*.sql"))

# The ORDER BY columns of each query (as named in its output); None where there is none.
ORDER_BY = {
    "q01": ["l_returnflag", "l_linestatus"], "q02": ["s_acctbal", "n_name", "s_name", "p_partkey"],
    "q03": ["revenue", "o_orderdate"], "q04": ["o_orderpriority"], "q05": ["revenue"], "q06": None,
    "q07": ["supp_nation", "cust_nation", "l_year"], "q08": ["o_year"], "q09": ["nation", "o_year"],
    "q10": ["revenue"], "q11": ["value"], "q12": ["l_shipmode"], "q13": ["custdist", "c_count"], "q14": None,
    "q15": ["s_suppkey"], "q16": ["supplier_cnt", "p_brand", "p_type", "p_size"], "q17": None,
    "q18": ["o_totalprice", "o_orderdate"], "q19": None, "q20": ["s_name"], "q21": ["numwait", "s_name"],
    "q22": ["cntrycode"],
}

REL, ABS = 1e-9, 1e-12


@pytest.fixture(scope="session")
def sql_tpch_dir(tmp_path_factory):
    beside = Path(sys.executable).with_name("tpchgen-cli")
    tool = str(beside) if beside.exists() else shutil.which("tpchgen-cli")
    if tool is None:
        raise RuntimeError("tpchgen-cli is not installed; it is a dev dependency: pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp(f"sql-tpch-sf{SCALE}")
    subprocess.run([tool, "parquet", "-s", str(SCALE), "--output-dir", str(out)], check=True, capture_output=True)
    missing = [t for t in TABLES if not (out / f"{t}.parquet").exists()]
    assert not missing, f"tpchgen-cli wrote no {missing} in {out}: {sorted(os.listdir(out))}"
    return out


@pytest.fixture(scope="session")
def sql_tpch_duck(sql_tpch_dir):
    con = duckdb.connect()
    con.execute("SET threads = 2")
    for table in TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({sqlpath(sql_tpch_dir / f'{table}.parquet')})")
    yield con
    con.close()


def decimals_to_float(table: pa.Table) -> pa.Table:
    columns = []
    for column in table.columns:
        if pa.types.is_decimal(column.type):
            column = column.cast(pa.int64() if column.type.scale == 0 else pa.float64())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


@pytest.mark.parametrize("plan", ["fused", "staged"])
@pytest.mark.parametrize("name", QUERIES)
def test_tpch_sql_text_matches_duckdb(runner, name, plan, sql_tpch_dir, sql_tpch_duck):
    if plan == "staged":
        sl.configure(fuse_fraction=0)
    elif runner != "local":
        pytest.skip("only the local runner fuses; the ray runner's run is the staged one")
    text = (SQL_DIR / f"{name}.sql").read_text()
    tables = {t: str(sql_tpch_dir / f"{t}.parquet") for t in TABLES}
    actual = decimals_to_float(sl.sql(text, tables).to_arrow())
    expected = decimals_to_float(sql_tpch_duck.sql(text).to_arrow_table())
    assert expected.num_rows > 0, f"{name}: DuckDB returned no rows; the comparison would prove nothing"
    assert_same(actual, expected, rel=REL, abs_=ABS)
    keys = ORDER_BY[name]
    if keys:
        assert_same(actual.select(keys), expected.select(keys), ordered=True, rel=REL, abs_=ABS)


def test_official_q15_with_create_view_runs_as_one_text(sql_tpch_dir, sql_tpch_duck):
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
    tables = {t: str(sql_tpch_dir / f"{t}.parquet") for t in TABLES}
    actual = decimals_to_float(sl.sql(text, tables).to_arrow())
    expected = decimals_to_float(sql_tpch_duck.sql((SQL_DIR / "q15.sql").read_text()).to_arrow_table())
    assert expected.num_rows > 0
    assert_same(actual, expected, ordered=True, rel=REL, abs_=ABS)

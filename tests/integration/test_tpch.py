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

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.tpch.queries import QUERIES, TABLES, load_tables

SCALE = 0.1
SQL_DIR = REPO / "bench" / "tpch" / "sql"

# The ORDER BY columns of each query (as named in its output); None where there is none.
ORDER_BY = {
    "q01": ["l_returnflag", "l_linestatus"],
    "q02": ["s_acctbal", "n_name", "s_name", "p_partkey"],
    "q03": ["revenue", "o_orderdate"],
    "q04": ["o_orderpriority"],
    "q05": ["revenue"],
    "q06": None,
    "q07": ["supp_nation", "cust_nation", "l_year"],
    "q08": ["o_year"],
    "q09": ["nation", "o_year"],
    "q10": ["revenue"],
    "q11": ["value"],
    "q12": ["l_shipmode"],
    "q13": ["custdist", "c_count"],
    "q14": None,
    "q15": ["s_suppkey"],
    "q16": ["supplier_cnt", "p_brand", "p_type", "p_size"],
    "q17": None,
    "q18": ["o_totalprice", "o_orderdate"],
    "q19": None,
    "q20": ["s_name"],
    "q21": ["numwait", "s_name"],
    "q22": ["cntrycode"],
}

REL, ABS = 1e-9, 1e-12


def _tpchgen() -> str:
    beside = Path(sys.executable).with_name("tpchgen-cli")
    found = str(beside) if beside.exists() else shutil.which("tpchgen-cli")
    if found is None:
        raise RuntimeError("tpchgen-cli is not installed; it is a dev dependency: pip install -e '.[dev]'")
    return found


@pytest.fixture(scope="session")
def tpch_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp(f"tpch-sf{SCALE}")
    subprocess.run([_tpchgen(), "parquet", "-s", str(SCALE), "--output-dir", str(out)], check=True,
                   capture_output=True)
    missing = [t for t in TABLES if not (out / f"{t}.parquet").exists()]
    assert not missing, f"tpchgen-cli wrote no {missing} in {out}: {sorted(os.listdir(out))}"
    return out


@pytest.fixture(scope="session")
def tpch_duck(tpch_dir):
    con = duckdb.connect()
    con.execute("SET threads = 2")
    for table in TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({sqlpath(tpch_dir / f'{table}.parquet')})")
    yield con
    con.close()


def decimals_to_float(table: pa.Table) -> pa.Table:
    """Decimal columns as float64 (scale 0 as int64), so exact and float results compare."""
    columns = []
    for column in table.columns:
        if pa.types.is_decimal(column.type):
            column = column.cast(pa.int64() if column.type.scale == 0 else pa.float64())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


@pytest.mark.parametrize("plan", ["fused", "staged"])
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_tpch_query(runner, name, plan, tpch_dir, tpch_duck):
    if plan == "staged":
        sl.configure(fuse_fraction=0)
    elif runner != "local":
        pytest.skip("only the local runner fuses; the ray runner's run is the staged one")
    actual = decimals_to_float(QUERIES[name](load_tables(tpch_dir)).to_arrow())
    expected = decimals_to_float(tpch_duck.sql((SQL_DIR / f"{name}.sql").read_text()).to_arrow_table())
    assert expected.num_rows > 0, f"{name}: DuckDB returned no rows; the comparison would prove nothing"
    assert_same(actual, expected, rel=REL, abs_=ABS)
    keys = ORDER_BY[name]
    if keys:
        assert_same(actual.select(keys), expected.select(keys), ordered=True, rel=REL, abs_=ABS)

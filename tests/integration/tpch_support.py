"""What both TPC-H suites share: SF 0.1 data made once per session by `tpchgen-cli` (a dev dependency), a
DuckDB connection over it, and the comparison (rows as multisets with decimals as float64 on both sides and a
relative tolerance; the ORDER BY columns also in order). test_tpch.py runs the Dataset-API queries of
bench/tpch/queries.py, test_sql_tpch.py the SQL texts through `sluice.sql`, both against DuckDB running the
texts of bench/tpch/sql/."""

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

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from bench.tpch.queries import TABLES  # noqa: E402

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


def assert_same_answer(name: str, actual: pa.Table, expected: pa.Table) -> None:
    """Query `name`'s rows as a multiset, and its ORDER BY columns in order."""
    actual, expected = decimals_to_float(actual), decimals_to_float(expected)
    assert expected.num_rows > 0, f"{name}: DuckDB returned no rows; the comparison would prove nothing"
    assert_same(actual, expected, rel=REL, abs_=ABS)
    keys = ORDER_BY[name]
    if keys:
        assert_same(actual.select(keys), expected.select(keys), ordered=True, rel=REL, abs_=ABS)

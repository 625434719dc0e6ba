"""DuckDB engine: the SQL reference implementation and answer oracle.

The core suite checks every engine's answer against this module's, so it is
written as plain SQL mirroring the suite docstring.  Threads: ``SET threads``.
"""
import duckdb

from bench.engines import harness
from bench.suites import core

THREADS = harness.threads()
VERSIONS = {"duckdb": duckdb.__version__}


def _connect():
    con = duckdb.connect()
    con.execute(f"SET threads = {THREADS}")
    return con


def scan_filter_project_map(data: str) -> dict:
    con = _connect()
    cols = ", ".join(core.PROJECT)
    rows, sum_net = con.execute(f"""
        SELECT count(*), sum(net) FROM (
          SELECT {cols},
                 CAST(l_extendedprice AS DOUBLE) * (1 - CAST(l_discount AS DOUBLE))
                   * (1 + CAST(l_tax AS DOUBLE)) AS net
          FROM read_parquet('{data}/lineitem/*.parquet')
          WHERE l_shipdate >= DATE '{core.SHIPDATE_FROM.isoformat()}'
            AND l_quantity < {core.QUANTITY_BELOW})
    """).fetchone()
    return {"rows": int(rows), "sum_net": float(sum_net or 0.0)}


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map}

if __name__ == "__main__":
    harness.main(VERSIONS, WORKLOADS)

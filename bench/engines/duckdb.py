"""DuckDB engine: the SQL reference implementation and answer oracle.

Every suite checks the other engines' answers against this module's, so it is plain
SQL: the core workload mirrors its suite docstring, TPC-H runs the official query text
(``bench/tpch/sql/qNN.sql``) over views on the Parquet tables, and the seeds workloads
are written out in ``bench/suites/seeds.py``'s SQL.  Threads: ``SET threads``.
"""
import tempfile

import duckdb

from bench.engines import harness
from bench.suites import core, scale, seeds, tpch

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


def _views(con, data: str, tables) -> None:
    for t in tables:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}/*.parquet')")


def _tpch(query: str):
    sql = tpch.sql_text(query)   # read once, outside the clock

    def run(data: str) -> dict:
        con = _connect()
        _views(con, data, tpch.TABLES)
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description]
        return tpch.rows_answer(columns, cur.fetchall())
    run.__name__ = query
    return run


def _seeds(workload: str):
    sql = seeds.SQL[workload]

    def run(data: str) -> dict:
        con = _connect()
        _views(con, data, seeds.TABLES)
        if workload not in seeds.WRITE_VALUE:
            cur = con.execute(sql)
            names = [d[0] for d in cur.description]
            return seeds.dict_answer(**dict(zip(names, cur.fetchone())))
        with tempfile.TemporaryDirectory(prefix="bench-duckdb-") as out:
            con.execute(sql.format(out=out))
            cur = con.execute(seeds.READ_BACK.format(out=out, value=seeds.WRITE_VALUE[workload]))
            names = [d[0] for d in cur.description]
            return seeds.dict_answer(**dict(zip(names, cur.fetchone())))
    run.__name__ = workload
    return run


def _scale(workload: str):
    def run(data: str) -> dict:
        with tempfile.TemporaryDirectory(prefix="bench-duckdb-spill-") as spill:
            con = _connect()
            con.execute(f"SET memory_limit = '{scale.BUDGET_BYTES // 2**20}MiB'")
            con.execute(f"SET temp_directory = '{spill}'")
            groups, n, total = con.execute(scale.SQL.format(data=scale.data_dir(data, workload))).fetchone()
            con.close()
        return scale.answer(groups, n, total)
    run.__name__ = workload
    return run


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map,
             **{w: _scale(w) for w in scale.WORKLOADS},
             **{q: _tpch(q) for q in tpch.WORKLOADS},
             **{w: _seeds(w) for w in seeds.WORKLOADS}}

if __name__ == "__main__":
    harness.main(VERSIONS, WORKLOADS)

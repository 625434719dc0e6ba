"""Dask engine: ``dask.dataframe`` (dask-expr) on the local threaded scheduler.

``BENCH_THREADS`` becomes ``num_workers`` of the threads scheduler, the default
scheduler of dask.dataframe when no distributed Client exists, which is how Dask
runs on one machine without extra setup.  Arrow's own CPU pool (used by the
Parquet reader and pyarrow-backed string/date columns) follows OMP_NUM_THREADS,
which the runner sets to the same budget.

TPC-H: ``bench/tpch/dask_queries.py`` (DataFrame API; see its docstring for how
subqueries are rewritten and why money columns are float64).
"""
from bench.engines import harness
from bench.suites import core
from bench.suites.tpch import rows_answer

THREADS = harness.threads()

import dask
import dask.dataframe as dd
import pandas
import pyarrow

dask.config.set(scheduler="threads", num_workers=THREADS)

from bench.tpch import dask_queries

VERSIONS = {"dask": dask.__version__, "pandas": pandas.__version__,
            "pyarrow": pyarrow.__version__}


def scan_filter_project_map(data: str) -> dict:
    df = dd.read_parquet(f"{data}/lineitem/")
    df = df[(df.l_shipdate >= core.SHIPDATE_FROM) & (df.l_quantity < core.QUANTITY_BELOW)]
    df = df[list(core.PROJECT)]
    price = df.l_extendedprice.astype("float64")
    df = df.assign(net=price * (1 - df.l_discount.astype("float64"))
                   * (1 + df.l_tax.astype("float64")))
    rows, sum_net = dask.compute(df.net.size, df.net.sum())
    return {"rows": int(rows), "sum_net": float(sum_net or 0.0)}


def _tpch(name: str):
    query = dask_queries.QUERIES[name]

    def run(data: str) -> dict:
        out = query(dask_queries.load_tables(data))
        return rows_answer(list(out.columns), out.itertuples(index=False, name=None))
    run.__name__ = name
    return run


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map}
WORKLOADS.update({name: _tpch(name) for name in dask_queries.QUERIES})

if __name__ == "__main__":
    harness.main(VERSIONS, WORKLOADS)

"""Polars engine: the lazy-API baseline sluice's core target is measured against.

POLARS_MAX_THREADS must be set before polars is imported, hence the import
order below.  Default ``collect()`` engine, as a typical user would run it.
"""
import os

from bench.engines import harness
from bench.suites import core

THREADS = harness.threads()
os.environ["POLARS_MAX_THREADS"] = str(THREADS)

import polars as pl  # noqa: E402  (after POLARS_MAX_THREADS)

VERSIONS = {"polars": pl.__version__}


def scan_filter_project_map(data: str) -> dict:
    f64 = pl.Float64
    out = (
        pl.scan_parquet(f"{data}/lineitem/*.parquet")
        .filter((pl.col("l_shipdate") >= core.SHIPDATE_FROM)
                & (pl.col("l_quantity") < core.QUANTITY_BELOW))
        .select(*core.PROJECT)
        .with_columns(net=pl.col("l_extendedprice").cast(f64)
                      * (1 - pl.col("l_discount").cast(f64))
                      * (1 + pl.col("l_tax").cast(f64)))
        .select(pl.len().alias("rows"), pl.col("net").sum().alias("sum_net"))
        .collect()
    )
    return {"rows": int(out["rows"][0]), "sum_net": float(out["sum_net"][0] or 0.0)}


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map}

if __name__ == "__main__":
    assert pl.thread_pool_size() == THREADS, "POLARS_MAX_THREADS not honoured"
    harness.main(VERSIONS, WORKLOADS)

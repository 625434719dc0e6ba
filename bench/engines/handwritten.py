"""``handwritten``: the core suite's pipeline as sluice runs it, written by hand with no engine.

sluice runs ``scan_filter_project_map`` as one Polars query per file (the filter applied as
Polars decodes, the five projected columns), each result converted to Arrow (string views
cast to large strings, as sluice's blocks hold them) and passed through the arrow function
``add_net``, on a pool of ``BENCH_THREADS`` threads, the batches summed by the caller in
file order. This module does the same with a ThreadPoolExecutor and
nothing else: no plan, no memory budget, no stats, no retries. Its time is the floor of
that design. Polars below it is what the opaque UDF costs: Polars sees the whole query, so
it never decodes l_orderkey and l_returnflag, which the UDF's input carries; sluice above
it is sluice's own overhead.
"""
import glob
import os
from concurrent.futures import ThreadPoolExecutor

from bench.engines import harness

THREADS = harness.threads()
os.environ["POLARS_MAX_THREADS"] = str(THREADS)

# pyarrow imports pandas on its first Python scalar (add_net's 1.0), ~0.2 s: load it before the clock,
# as `import sluice` does
import pandas  # noqa: E402,F401
import polars as pl  # noqa: E402  (after POLARS_MAX_THREADS)
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from bench.engines.arrow_udfs import add_net  # noqa: E402
from bench.suites import core  # noqa: E402

VERSIONS = {"polars": pl.__version__, "pyarrow": pa.__version__}


def scan_filter_project_map(data: str) -> dict:
    predicate = (pl.col("l_shipdate") >= core.SHIPDATE_FROM) & (pl.col("l_quantity") < core.QUANTITY_BELOW)

    def one_file(path: str) -> pa.Table:
        frame = pl.scan_parquet(path).filter(predicate).select(core.PROJECT).collect()
        table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
        # sluice's block types: string views become large strings (cast by pyarrow in this thread)
        table = pa.table([c.cast(pa.large_string()) if pa.types.is_string_view(c.type) else c for c in table.columns],
                         names=table.column_names)
        return add_net(table)

    rows, total = 0, 0.0
    with ThreadPoolExecutor(THREADS) as pool:
        for table in pool.map(one_file, sorted(glob.glob(f"{data}/lineitem/*.parquet"))):
            for batch in table.to_batches():
                rows += batch.num_rows
                total += pc.sum(batch["net"]).as_py() or 0.0
    return {"rows": rows, "sum_net": total}


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map}

if __name__ == "__main__":
    harness.main(VERSIONS, WORKLOADS)

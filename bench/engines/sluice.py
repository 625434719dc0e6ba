"""sluice engine: the system under test, through its public API only.

The map step is the point of the core workload: an arrow-native
``map_batches`` UDF (pa.Table in, pa.Table out, computed with
pyarrow.compute) rather than a built-in expression.  Threads:
SLUICE_NUM_THREADS, set before import.
"""
import os

from bench.engines import harness
from bench.suites import core

THREADS = harness.threads()
os.environ["SLUICE_NUM_THREADS"] = str(THREADS)

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import sluice as sl  # noqa: E402
from sluice import col  # noqa: E402

VERSIONS = {"sluice": getattr(sl, "__version__", "unknown"), "pyarrow": pa.__version__}


def add_net(t: pa.Table) -> pa.Table:
    """net = price * (1 - discount) * (1 + tax), in float64."""
    price, disc, tax = (pc.cast(t[c], pa.float64())
                        for c in ("l_extendedprice", "l_discount", "l_tax"))
    net = pc.multiply(pc.multiply(price, pc.subtract(1.0, disc)), pc.add(1.0, tax))
    return t.append_column("net", net)


def scan_filter_project_map(data: str) -> dict:
    ds = sl.read_parquet(f"{data}/lineitem")
    ds = ds.filter((col("l_shipdate") >= core.SHIPDATE_FROM)
                   & (col("l_quantity") < core.QUANTITY_BELOW))
    ds = ds.select(*core.PROJECT)
    ds = ds.map_batches(add_net, batch_format="arrow")
    rows, total = 0, 0.0
    for batch in ds.iter_batches():
        rows += batch.num_rows
        total += pc.sum(batch["net"]).as_py() or 0.0
    return {"rows": rows, "sum_net": total}


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map}

if __name__ == "__main__":
    harness.main(VERSIONS, WORKLOADS)

"""PySpark engine: Spark SQL in local mode, ``local[BENCH_THREADS]``.

One SparkSession per process, created before the clock starts (JVM start-up
is not part of a query).  Inside the clock each workload registers temporary
views over the Parquet directories (``spark.read.parquet``: Spark lists the
files and reads a footer for the schema), runs the query and collects the
result to the driver.

Memory: Spark works in the JVM, a child process, so the harness's peak RSS (this
Python driver's ``ru_maxrss``) misses it; every run notes ``jvm_peak_rss_mib``, the
JVM's VmHWM.

Settings, chosen for one machine rather than a cluster:

- ``spark.driver.memory``: a third of physical RAM, 2..16 GiB (the driver is the
  only executor in local mode).  Set before the JVM starts.
- ``spark.sql.shuffle.partitions`` = 4 x threads instead of 200: with adaptive query
  execution (on by default) 200 would be coalesced anyway, but each partition costs a
  task; ``spark.sql.files.maxPartitionBytes`` stays at its default (128 MiB).
- UI off, log level ERROR; everything else is Spark's default (ANSI mode on in 4.x).

TPC-H runs the official text of ``bench/tpch/sql/qNN.sql`` unchanged.
"""
import os
import sys
from pathlib import Path

from bench.engines import harness
from bench.suites import core
from bench.suites.tpch import rows_answer

THREADS = harness.threads()
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

import pyspark  # after PYSPARK_PYTHON above
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

TPCH_TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")
SQL_DIR = Path(__file__).resolve().parent.parent / "tpch" / "sql"


def _driver_memory() -> str:
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{int(min(16, max(2, ram_gib // 3)))}g"


DRIVER_MEMORY = os.environ.get("BENCH_SPARK_DRIVER_MEMORY") or _driver_memory()

_spark = None


def spark() -> SparkSession:
    global _spark
    if _spark is None:
        _spark = (
            SparkSession.builder
            .master(f"local[{THREADS}]")
            .appName("sluice-bench")
            .config("spark.driver.memory", DRIVER_MEMORY)
            .config("spark.sql.shuffle.partitions", str(4 * THREADS))
            .config("spark.default.parallelism", str(THREADS))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
        _spark.sparkContext.setLogLevel("ERROR")
    return _spark


VERSIONS = {"pyspark": pyspark.__version__}


def _jvm_peak_rss_mib():
    """Peak RSS (VmHWM) of the JVM, where Spark does the work; the harness's own peak
    RSS is this Python driver's only."""
    try:
        pid = spark().sparkContext._gateway.proc.pid
        with open(f"/proc/{pid}/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
        return round(kib / 1024, 1)
    except (AttributeError, OSError, StopIteration):
        return None


def scan_filter_project_map(data: str) -> dict:
    dbl = "double"
    row = (
        spark().read.parquet(f"{data}/lineitem")
        .where((F.col("l_shipdate") >= F.lit(core.SHIPDATE_FROM))
               & (F.col("l_quantity") < core.QUANTITY_BELOW))
        .select(*core.PROJECT)
        .withColumn("net", F.col("l_extendedprice").cast(dbl)
                    * (1 - F.col("l_discount").cast(dbl))
                    * (1 + F.col("l_tax").cast(dbl)))
        .agg(F.count(F.lit(1)).alias("rows"), F.sum("net").alias("sum_net"))
        .collect()[0]
    )
    harness.note("jvm_peak_rss_mib", _jvm_peak_rss_mib())
    return {"rows": int(row["rows"]), "sum_net": float(row["sum_net"] or 0.0)}


def _tpch(name: str):
    def run(data: str) -> dict:
        s = spark()
        for t in TPCH_TABLES:
            s.read.parquet(f"{data}/{t}").createOrReplaceTempView(t)
        df = s.sql((SQL_DIR / f"{name}.sql").read_text().strip().rstrip(";"))
        rows = [tuple(r) for r in df.collect()]
        harness.note("jvm_peak_rss_mib", _jvm_peak_rss_mib())
        return rows_answer(df.columns, rows)
    run.__name__ = name
    return run


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map}
WORKLOADS.update({f"q{i:02d}": _tpch(f"q{i:02d}") for i in range(1, 23)})

if __name__ == "__main__":
    spark()                     # JVM and session start-up, outside the clock
    VERSIONS["spark"] = spark().version
    VERSIONS["java"] = spark().sparkContext._jvm.System.getProperty("java.version")
    try:
        harness.main(VERSIONS, WORKLOADS)
    finally:
        spark().stop()

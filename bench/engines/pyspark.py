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

TPC-H runs the official text of ``bench/tpch/sql/qNN.sql`` unchanged.  seeds: the SQL of
``bench/suites/seeds.py`` in Spark's dialect (``SEEDS_SQL``: ``day div 7``; writes with
``DataFrame.write.parquet``, read back with ``spark.read.parquet``; the dedup is
``dropDuplicates``, Spark SQL having no DISTINCT ON); Spark picks the join strategies
itself (users is under its broadcast threshold, items is not).  sort_checksum's
``row_number() OVER (ORDER BY ...)`` has no partition, so Spark runs it in one task, as
written.  scale: the suite's query as Spark SQL.  Spark's memory knob is the JVM heap:
``spark.driver.memory`` stays DRIVER_MEMORY above (not the scale suite's 512 MiB budget);
Spark spills sorts, aggregations and shuffles to disk within it.
"""
import os
import sys
import tempfile
from pathlib import Path

from bench.engines import harness
from bench.suites import core, scale, seeds
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


# ---------------------------------------------------------------- seeds
# Spark SQL, the text of ``seeds.SQL`` in Spark's dialect: ``day div 7`` for DuckDB's
# ``day // 7``; the writes are ``DataFrame.write.parquet`` (Spark has no COPY); the dedup
# is ``dropDuplicates`` (Spark SQL has no DISTINCT ON).

SEEDS_SQL = {
    "join_broadcast_write": """
        SELECT u.country, e.day, count(*) AS n, sum(e.amount) AS spend
        FROM events e JOIN users u ON e.user_id = u.user_id
        GROUP BY u.country, e.day""",
    "join_shuffle_write": """
        SELECT i.category, e.day, count(*) AS n, sum(e.amount * i.price) AS revenue
        FROM events e JOIN items i ON e.item_id = i.item_id
        GROUP BY i.category, e.day""",
    "skew_join": """
        SELECT count(*) AS n, sum(f.amount) AS amount, sum(d.weight) AS weight
        FROM skew_fact f JOIN skew_dim d ON f.k = d.k""",
    "daily_features": f"""
        WITH daily AS (
            SELECT user_id, day, count(*) AS n_day, sum(amount) AS spend
            FROM events GROUP BY user_id, day),
        windows AS (
            SELECT *, sum(n_day) OVER (PARTITION BY user_id, day div {seeds.WEEK}) AS n_week,
                      sum(n_day) OVER (PARTITION BY user_id) AS n_user
            FROM daily),
        features AS (
            SELECT w.*, u.country, u.segment,
                   n_day / n_week AS share_week, n_week / n_user AS share_user,
                   spend / n_day AS avg_spend,
                   CASE WHEN n_week >= {seeds.HEAVY_WEEK} THEN 1 ELSE 0 END AS heavy,
                   u.segment * (spend / n_day) AS weighted
            FROM windows w JOIN users u ON w.user_id = u.user_id)
        SELECT count(*) AS rows, sum(n_week) AS n_week, sum(n_user) AS n_user,
               sum(share_week) AS share_week, sum(share_user) AS share_user,
               sum(avg_spend) AS avg_spend, sum(heavy) AS heavy, sum(weighted) AS weighted,
               count(DISTINCT country) AS countries
        FROM features""",
    # A window ordered over the whole table: Spark runs it in one partition (one task), as
    # it warns; this is the query as written, not a hand-made distributed numbering.
    "sort_checksum": f"""
        SELECT count(*) AS rows, sum((rn - 1) * (event_id % {seeds.CHECKSUM_MOD})) AS checksum
        FROM (SELECT event_id,
                     row_number() OVER (ORDER BY user_id, day, event_id) AS rn
              FROM events)""",
}


def _seeds_views(data: str):
    s = spark()
    for t in seeds.TABLES:
        s.read.parquet(f"{data}/{t}").createOrReplaceTempView(t)
    return s


def _row_answer(df) -> dict:
    row = df.collect()[0]
    harness.note("jvm_peak_rss_mib", _jvm_peak_rss_mib())
    return seeds.dict_answer(**row.asDict())


def _seeds(workload: str):
    def run(data: str) -> dict:
        s = _seeds_views(data)
        df = s.sql(SEEDS_SQL[workload])
        if workload not in seeds.WRITE_VALUE:
            return _row_answer(df)
        value = seeds.WRITE_VALUE[workload]
        with tempfile.TemporaryDirectory(prefix="bench-pyspark-") as tmp:
            df.write.parquet(f"{tmp}/out")
            back = s.read.parquet(f"{tmp}/out").agg(
                F.count(F.lit(1)).alias("groups"), F.sum("n").alias("n"), F.sum(value).alias(value))
            return _row_answer(back)
    run.__name__ = workload
    return run


def dedup_event_id(data: str) -> dict:
    """``DISTINCT ON (event_id)`` is ``dropDuplicates(["event_id"])`` in Spark."""
    events = _seeds_views(data).table("events")
    return _row_answer(events.dropDuplicates(["event_id"]).agg(
        F.count(F.lit(1)).alias("rows"), F.sum("event_id").alias("sum_event_id"),
        F.sum("amount").alias("amount")))


# ---------------------------------------------------------------- scale
# Spark's memory knob is the JVM heap, spark.driver.memory: it stays DRIVER_MEMORY as in
# every suite (see the module docstring), not the suite's 512 MiB budget.

SCALE_SQL = """
    SELECT count(*) AS groups, sum(n) AS n, sum(total) AS total FROM (
      SELECT f.u, count(*) AS n, sum(f.v * d.w) AS total
      FROM fact f JOIN dim d ON f.k = d.k
      GROUP BY f.u)"""


def _scale(workload: str):
    def run(data: str) -> dict:
        s = spark()
        root = scale.data_dir(data, workload)
        for t in ("fact", "dim"):
            s.read.parquet(f"{root}/{t}").createOrReplaceTempView(t)
        row = s.sql(SCALE_SQL).collect()[0]
        harness.note("jvm_peak_rss_mib", _jvm_peak_rss_mib())
        return scale.answer(row["groups"], row["n"], row["total"])
    run.__name__ = workload
    return run


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map}
WORKLOADS.update({f"q{i:02d}": _tpch(f"q{i:02d}") for i in range(1, 23)})
WORKLOADS.update({w: _seeds(w) for w in SEEDS_SQL})
WORKLOADS["dedup_event_id"] = dedup_event_id
WORKLOADS.update({w: _scale(w) for w in scale.WORKLOADS})

if __name__ == "__main__":
    spark()                     # JVM and session start-up, outside the clock
    VERSIONS["spark"] = spark().version
    VERSIONS["java"] = spark().sparkContext._jvm.System.getProperty("java.version")
    try:
        harness.main(VERSIONS, WORKLOADS)
    finally:
        spark().stop()

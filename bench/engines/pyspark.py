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

udf: ``mapInArrow``, PySpark's Arrow-batched Python UDF (Spark streams each task's rows to
its Python workers as Arrow record batches, ``spark.sql.execution.arrow.maxRecordsPerBatch``
rows each, default 10,000; the workers are reused across tasks, Spark's default).
per_row_score runs ``udf.score_columns`` over each batch's columns as Python lists;
sklearn_inference predicts each batch with a ``udf.Scorer`` that each Python worker builds
once (fits the model on its first batch) and keeps in a module-level cache keyed by the
train directory: Spark has no actor pools, a long-lived Python worker is its nearest form.
The output comes back to the driver with ``toArrow()`` and is reduced by
``bench.engines.udf_answers``, as for every engine.  The venv adds pandas and pyarrow (what
``pyspark[sql]`` adds for these APIs) and scikit-learn.
"""
import os
import sys
import tempfile
from pathlib import Path

from bench.engines import harness
from bench.suites import core, scale, seeds, udf
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
    # the same text as DuckDB's, but for the integer division (and the window ordered over the
    # whole table in sort_checksum: Spark runs it in one task, as it warns; the query as written)
    "skew_join": seeds.SQL["skew_join"],
    "daily_features": seeds.SQL["daily_features"].replace(f"day // {seeds.WEEK}", f"day div {seeds.WEEK}"),
    "sort_checksum": seeds.SQL["sort_checksum"],
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


# ---------------------------------------------------------------- udf
# mapInArrow: the functions Spark ships to its Python workers are looked up in this module
# imported by name (``_udf_functions``), not in ``__main__``: cloudpickle pickles a
# ``__main__`` function by value, with a fresh copy of its globals per task, which would
# defeat the per-worker model cache below.

_SCORERS = {}     # train dir -> udf.Scorer, one per Python worker process


def _score_batches(batches):
    import pyarrow as pa
    for b in batches:
        scores = udf.score_columns(b.column("x").to_pylist(), b.column("a").to_pylist(),
                                   b.column("b").to_pylist())
        yield pa.RecordBatch.from_arrays([pa.array(scores, pa.float64())], names=["score"])


def _predict_batches(train_dir, batches):
    import pyarrow as pa
    scorer = _SCORERS.get(train_dir)
    if scorer is None:
        scorer = _SCORERS[train_dir] = udf.Scorer(train_dir)
    for b in batches:
        pred = scorer.predict({f: b.column(f).to_numpy() for f in udf.FEATURES})
        yield pa.RecordBatch.from_arrays([b.column("id"), pa.array(pred, pa.int64())],
                                         names=["id", "pred"])


def _udf_functions():
    """This module as the workers import it (``bench.engines.pyspark``), also when the driver
    runs it as ``__main__``."""
    import importlib
    return importlib.import_module("bench.engines.pyspark")


def per_row_score(data: str) -> dict:
    from bench.engines import udf_answers
    out = spark().read.parquet(f"{data}/rows").select("x", "a", "b").mapInArrow(
        _udf_functions()._score_batches, "score double").toArrow()
    harness.note("jvm_peak_rss_mib", _jvm_peak_rss_mib())
    return udf_answers.score([out])


def sklearn_inference(data: str) -> dict:
    import functools
    from bench.engines import udf_answers
    predict = functools.partial(_udf_functions()._predict_batches, f"{data}/train")
    out = spark().read.parquet(f"{data}/features").select("id", *udf.FEATURES).mapInArrow(
        predict, "id long, pred long").toArrow()
    harness.note("jvm_peak_rss_mib", _jvm_peak_rss_mib())
    return udf_answers.inference([out])


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map,
             "per_row_score": per_row_score, "sklearn_inference": sklearn_inference}
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

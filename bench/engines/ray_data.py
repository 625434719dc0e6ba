"""Ray Data engine (``ray-data``): a Ray cluster of ``BENCH_THREADS`` CPUs of its own.

``ray_start.start`` runs before the clock: ``ray.init(address="local", num_cpus=N,
include_dashboard=False)`` (never a cluster that another process on the machine started),
or, in the ``ray`` suite, a 2-node cluster simulated in this process (``ray_start``),
followed by one tiny map_batches job so the N worker processes exist (with pyarrow
imported): a cluster's start-up is set-up, not query time (it takes seconds; on a loaded
2-core machine the first tasks otherwise wait ~10 s for their worker processes).
Ray Data then schedules read, map and shuffle tasks on those N CPUs.  Settings:

- progress bars off; usage stats off (no network here anyway);
- ``default_hash_shuffle_parallelism`` (groupby/aggregate partitions when not given,
  default 200) and the ``num_partitions`` of every join: 2 x N.  200 partitions on
  2 CPUs mostly measure task overhead; 2 x N keeps every CPU busy with a spare
  partition for skew.

Memory: the work runs in Ray worker processes, so the harness's peak RSS (the driver's
``ru_maxrss``) misses it.  Each run therefore notes ``ray_processes_peak_rss_mib``: the
sum over the Ray processes (raylet, GCS, workers) of their peak RSS (``VmHWM``), an
upper bound, since the object store's shared memory counts in every process mapping it.

core: read_parquet with the filter pushed into the scan, then an arrow-native
``map_batches(batch_format="pyarrow")`` adding ``net`` (as in sluice), then a global
aggregate.  TPC-H: ``bench/tpch/ray_data_queries.py``.  udf: ``map_batches`` with the
suite's batch function (Ray tasks) and with ``udf.Scorer`` as an actor pool.  ray suite:
the seeds suite's ``join_broadcast_write`` (see that function) and udf's ``per_row_score``.
"""
import os
import tempfile

from bench.engines import harness, ray_start
from bench.suites import core, seeds, udf
from bench.suites.tpch import columns_answer

THREADS = harness.threads()
PARTITIONS = 2 * THREADS
ROW_API = os.environ.get("BENCH_RAY_ROW_API") == "1"
BROADCAST = os.environ.get("BENCH_RAY_BROADCAST") == "1"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data
from ray.data.aggregate import Count, Sum
from ray.data.expressions import col, lit

from bench.engines import udf_answers
from bench.tpch import ray_data_queries

VERSIONS = {"ray": ray.__version__, "pyarrow": pa.__version__, **({"api": "Dataset.map"} if ROW_API else {}),
            **({"join": "hand-written broadcast"} if BROADCAST else {}),
            **({"cluster": ray_start.describe(ray_start.cluster_shape(THREADS))}
               if ray_start.cluster_shape(THREADS) else {})}


CLUSTER = None   # the simulated cluster (ray suite), see ray_start


def _start() -> None:
    global CLUSTER
    # a cluster of our own: BENCH_RAY_NODES nodes (ray suite) or one local instance
    CLUSTER = ray_start.start(THREADS)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.default_hash_shuffle_parallelism = PARTITIONS
    # Start the worker processes (and their pyarrow import) before the clock, as a
    # long-lived Ray cluster would have them: one arrow-native task per CPU.
    ray.data.range(THREADS, override_num_blocks=THREADS) \
        .map_batches(lambda b: b, batch_format="pyarrow").materialize()


_ray_peak_rss_mib = ray_start.ray_processes_peak_rss_mib


def _net(batch: pa.Table) -> pa.Table:
    f64 = pa.float64()
    price, disc, tax = (pc.cast(batch[c], f64) for c in ("l_extendedprice", "l_discount", "l_tax"))
    net = pc.multiply(pc.multiply(price, pc.subtract(1.0, disc)), pc.add(1.0, tax))
    return batch.append_column("net", net)


def scan_filter_project_map(data: str) -> dict:
    t = ray_data_queries.Tables(data, PARTITIONS)
    # the files' types (decimals stay decimal, as the suite specifies); only string_view
    # becomes string, which pyarrow's scan filter needs (see ray_data_queries)
    schema = t.schema("lineitem", float_money=False)
    ds = ray.data.read_parquet(f"{data}/lineitem", schema=schema)
    ds = ds.filter(expr=(col("l_shipdate") >= lit(core.SHIPDATE_FROM))
                   & (col("l_quantity") < lit(pa.scalar(core.QUANTITY_BELOW, pa.decimal128(15, 2)))))
    ds = ds.select_columns(list(core.PROJECT)).map_batches(_net, batch_format="pyarrow")
    out = ds.aggregate(Count(alias_name="rows"), Sum("net", alias_name="sum_net"))
    harness.note("ray_processes_peak_rss_mib", _ray_peak_rss_mib())
    return {"rows": int(out["rows"]), "sum_net": float(out["sum_net"] or 0.0)}


def _tpch(name: str):
    query = ray_data_queries.QUERIES[name]

    def run(data: str) -> dict:
        table = query(ray_data_queries.Tables(data, PARTITIONS))
        harness.note("ray_processes_peak_rss_mib", _ray_peak_rss_mib())
        return columns_answer(table.column_names, [c.to_pylist() for c in table.columns])
    run.__name__ = name
    return run


# ---------------------------------------------------------------- udf


def _score_numpy(batch: dict) -> dict:
    """udf.score_batch, its list returned as the numpy array Ray's numpy batches hold."""
    return {"score": np.asarray(udf.score_batch(batch)["score"], dtype=np.float64)}


def _score_row(row: dict) -> dict:
    return {"score": udf.score(row["x"], row["a"], row["b"])}


def per_row_score(data: str) -> dict:
    """The per-row loop in Ray tasks: map_batches (numpy batches, default batch_size=None,
    i.e. whole blocks), fused with the read; with BENCH_RAY_ROW_API=1 (the runner's
    ``ray-data-map`` variant) Ray Data's per-row API, ``Dataset.map``, instead."""
    ds = ray.data.read_parquet(f"{data}/rows")
    if ROW_API:
        ds = ds.map(_score_row)
    else:
        ds = ds.map_batches(_score_numpy, batch_format="numpy")
    answer = udf_answers.score(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    harness.note("ray_processes_peak_rss_mib", _ray_peak_rss_mib())
    return answer


def sklearn_inference(data: str) -> dict:
    """An actor pool of THREADS actors, each fitting the model once.  Each actor asks for half
    a CPU: with a whole one, the THREADS actors hold every CPU of the cluster, Ray Data's
    file-listing and read tasks never get one, and the job hangs ("Cluster resources are
    not enough to run any task").  The actors still are THREADS busy processes."""
    ds = ray.data.read_parquet(f"{data}/features").map_batches(
        udf.Scorer, fn_constructor_args=(f"{data}/train",), batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=THREADS), num_cpus=0.5)
    answer = udf_answers.inference(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    harness.note("ray_processes_peak_rss_mib", _ray_peak_rss_mib())
    return answer


# ---------------------------------------------------------------- seeds (ray suite)


def _join_users(events: pa.Table, users) -> pa.Table:
    """The hand-written broadcast join: every block of events joined to the whole users table
    (an ObjectRef, which Ray Data hands over as is: read zero-copy from the node's store)."""
    return events.join(ray.get(users), "user_id", join_type="inner").select(["country", "day", "amount"])


def join_broadcast_write(data: str) -> dict:
    """events x users -> group by (country, day) -> count, sum(amount) -> Parquet, read back.

    Ray Data's join is a hash-shuffle join of both sides (``Dataset.join``, 2 x N
    partitions): the idiomatic form, run as ``ray-data``.  Ray Data has no broadcast join;
    the runner's ``ray-data-broadcast`` variant (BENCH_RAY_BROADCAST=1) writes one by hand:
    the 100k-row users table is read in the driver, ``ray.put`` once, and joined to every
    block of events in ``map_batches`` (pyarrow's hash join).  The group-by is Ray Data's
    hash-shuffle aggregate in both."""
    events = ray.data.read_parquet(f"{data}/events").select_columns(["user_id", "day", "amount"])
    if BROADCAST:
        import pyarrow.parquet as pq
        users = ray.put(pq.read_table(f"{data}/users", columns=["user_id", "country"]))
        joined = events.map_batches(_join_users, batch_format="pyarrow", fn_args=(users,))
    else:
        users = ray.data.read_parquet(f"{data}/users").select_columns(["user_id", "country"])
        joined = events.join(users, join_type="inner", num_partitions=PARTITIONS, on=("user_id",))
    grouped = joined.groupby(["country", "day"]).aggregate(
        Count(alias_name="n"), Sum("amount", alias_name="spend"))
    with tempfile.TemporaryDirectory(prefix="bench-ray-data-") as tmp:
        grouped.write_parquet(f"{tmp}/out")
        back = ray.data.read_parquet(f"{tmp}/out").aggregate(
            Count(alias_name="groups"), Sum("n", alias_name="n"), Sum("spend", alias_name="spend"))
    harness.note("ray_processes_peak_rss_mib", _ray_peak_rss_mib())
    return seeds.dict_answer(groups=back["groups"], n=back["n"], spend=back["spend"])


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map,
             "per_row_score": per_row_score, "sklearn_inference": sklearn_inference,
             "join_broadcast_write": join_broadcast_write}
WORKLOADS.update({name: _tpch(name) for name in ray_data_queries.QUERIES})

if __name__ == "__main__":
    _start()
    try:
        harness.main(VERSIONS, WORKLOADS)
    finally:
        ray_start.stop(CLUSTER)

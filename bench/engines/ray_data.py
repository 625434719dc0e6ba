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

seeds: Ray Data's own operators, each function says how: joins are ``Dataset.join`` (a
hash shuffle of both sides, 2 x N partitions; Ray Data has no broadcast join), group-bys
its hash-shuffle ``groupby().aggregate``, writes ``write_parquet`` read back with
``read_parquet``.  Where Ray Data has no operator the workload is still written with the
ones it has: the dedup is a group-by on event_id, the windows of daily_features are
group-bys joined back, and sort_checksum's row positions come from per-block counts of the
sorted dataset (``preserve_order``) added up in the driver.  scale: join, ``with_column``,
group-by, aggregate; the budget is given to Ray Data's executor as its object-store memory
limit (``execution_options.resource_limits.object_store_memory`` = 512 MiB, the budget
it backpressures against); the object store itself keeps the size ``ray_start`` gives it,
and the shuffle actors' heaps have no limit.
"""
import os
import tempfile

from bench.engines import harness, ray_start
from bench.suites import core, scale, seeds, udf
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
from ray.data import ExecutionResources
from ray.data.aggregate import Count, CountDistinct, Max, Sum
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
    return _write_and_read_back(grouped, "spend")


def _write_and_read_back(grouped, value: str) -> dict:
    """``write_parquet`` into a fresh directory, then the read-back of ``seeds.READ_BACK``
    (groups, summed n, summed value) as a Ray Data aggregate."""
    with tempfile.TemporaryDirectory(prefix="bench-ray-data-") as tmp:
        grouped.write_parquet(f"{tmp}/out")
        back = ray.data.read_parquet(f"{tmp}/out").aggregate(
            Count(alias_name="groups"), Sum("n", alias_name="n"), Sum(value, alias_name=value))
    harness.note("ray_processes_peak_rss_mib", _ray_peak_rss_mib())
    return seeds.dict_answer(groups=back["groups"], n=back["n"], **{value: back[value]})


# ---------------------------------------------------------------- seeds suite (the rest)


def _read(data: str, table: str, columns) -> ray.data.Dataset:
    return ray.data.read_parquet(f"{data}/{table}").select_columns(list(columns))


def _join(left, right, on) -> ray.data.Dataset:
    """Ray Data's join: a hash shuffle of both sides into 2 x N partitions."""
    return left.join(right, join_type="inner", num_partitions=PARTITIONS, on=tuple(on))


def _answer(ds, *aggs) -> dict:
    out = ds.aggregate(*aggs)
    harness.note("ray_processes_peak_rss_mib", _ray_peak_rss_mib())
    return seeds.dict_answer(**out)


def join_shuffle_write(data: str) -> dict:
    """events x items (hash-shuffle join) -> ``with_column`` for the revenue -> the
    hash-shuffle group-by -> Parquet, read back."""
    joined = _join(_read(data, "events", ("item_id", "day", "amount")),
                   _read(data, "items", ("item_id", "category", "price")), ["item_id"])
    grouped = (joined.with_column("revenue", col("amount") * col("price"))
               .groupby(["category", "day"])
               .aggregate(Count(alias_name="n"), Sum("revenue", alias_name="revenue")))
    return _write_and_read_back(grouped, "revenue")


def dedup_event_id(data: str) -> dict:
    """Ray Data has no distinct-on-a-key: a group-by on event_id keeping one value of each
    other column the answer needs (``Max``; duplicates are exact copies, so it is the row's)."""
    distinct = _read(data, "events", ("event_id", "amount")).groupby("event_id").aggregate(
        Max("amount", alias_name="amount"))
    return _answer(distinct, Count(alias_name="rows"), Sum("event_id", alias_name="sum_event_id"),
                   Sum("amount", alias_name="amount"))


def skew_join(data: str) -> dict:
    joined = _join(ray.data.read_parquet(f"{data}/skew_fact"), ray.data.read_parquet(f"{data}/skew_dim"), ["k"])
    return _answer(joined, Count(alias_name="n"), Sum("amount", alias_name="amount"),
                   Sum("weight", alias_name="weight"))


def _features(batch: pa.Table) -> pa.Table:
    """The vectorised transforms of daily_features, arrow-native (ratios in float64, as SQL's
    ``/`` on integers)."""
    f64 = pa.float64()
    n_day, n_week, n_user = (pc.cast(batch[c], f64) for c in ("n_day", "n_week", "n_user"))
    avg_spend = pc.divide(batch["spend"], n_day)
    return pa.table({
        "n_week": batch["n_week"], "n_user": batch["n_user"], "country": batch["country"],
        "share_week": pc.divide(n_day, n_week), "share_user": pc.divide(n_week, n_user),
        "avg_spend": avg_spend,
        "heavy": pc.if_else(pc.greater_equal(batch["n_week"], seeds.HEAVY_WEEK), 1, 0),
        "weighted": pc.multiply(pc.cast(batch["segment"], f64), avg_spend)})


def daily_features(data: str) -> dict:
    """Ray Data has no window functions: each window is its group-by joined back on its keys
    (the weekly sums on (user_id, week), the per-user sums on user_id).  The per user-day
    table they both come from is ``materialize()``d once rather than recomputed per use;
    the transforms are one arrow-native ``map_batches``."""
    daily = (_read(data, "events", ("user_id", "day", "amount")).groupby(["user_id", "day"])
             .aggregate(Count(alias_name="n_day"), Sum("amount", alias_name="spend"))
             .with_column("week", col("day") // seeds.WEEK)
             .materialize())
    weekly = daily.groupby(["user_id", "week"]).aggregate(Sum("n_day", alias_name="n_week"))
    per_user = daily.groupby("user_id").aggregate(Sum("n_day", alias_name="n_user"))
    windows = _join(_join(daily, weekly, ["user_id", "week"]), per_user, ["user_id"])
    features = _join(windows, _read(data, "users", ("user_id", "country", "segment")), ["user_id"]) \
        .map_batches(_features, batch_format="pyarrow")
    return _answer(features, Count(alias_name="rows"), Sum("n_week", alias_name="n_week"),
                   Sum("n_user", alias_name="n_user"), Sum("share_week", alias_name="share_week"),
                   Sum("share_user", alias_name="share_user"), Sum("avg_spend", alias_name="avg_spend"),
                   Sum("heavy", alias_name="heavy"), Sum("weighted", alias_name="weighted"),
                   CountDistinct("country", alias_name="countries"))


def _block_checksum(batch: pa.Table) -> pa.Table:
    """One block of the sorted events: its rows, sum(i * m) with its own positions i and
    sum(m), m = event_id % CHECKSUM_MOD; the driver shifts each block by its offset."""
    m = batch["event_id"].to_numpy() % seeds.CHECKSUM_MOD
    local = int(np.dot(np.arange(len(m), dtype=np.int64), m))
    return pa.table({"rows": [len(m)], "local": [local], "msum": [int(m.sum())]})


def sort_checksum(data: str) -> dict:
    """``sort`` on the three keys (Ray Data's sample-partition-sort), then the positions:
    Ray Data has no row numbers, so each sorted block reports its count and its checksum
    relative to its own start (``map_batches`` over whole blocks), and the driver adds the
    blocks up in order, shifting each by the rows before it: sum((o + i) * m) =
    sum(i * m) + o * sum(m).  ``preserve_order`` on this dataset's context keeps the blocks
    in sort order (off by default)."""
    ds = (_read(data, "events", ("user_id", "day", "event_id")).sort(["user_id", "day", "event_id"])
          .map_batches(_block_checksum, batch_format="pyarrow", batch_size=None))
    ds.context.execution_options.preserve_order = True
    rows = checksum = 0
    for block in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for n, local, msum in zip(*(block[c].to_pylist() for c in ("rows", "local", "msum"))):
            checksum += local + rows * msum
            rows += n
    harness.note("ray_processes_peak_rss_mib", _ray_peak_rss_mib())
    return seeds.dict_answer(rows=rows, checksum=checksum)


# ---------------------------------------------------------------- scale


def _scale(workload: str):
    def run(data: str) -> dict:
        root = scale.data_dir(data, workload)
        joined = _join(ray.data.read_parquet(f"{root}/fact"), ray.data.read_parquet(f"{root}/dim"), ["k"])
        per_u = (joined.with_column("vw", col("v") * col("w")).groupby("u")
                 .aggregate(Count(alias_name="n"), Sum("vw", alias_name="total")))
        # the budget: the object-store memory Ray Data's executor may use (see the docstring)
        per_u.context.execution_options.resource_limits = ExecutionResources(
            object_store_memory=scale.BUDGET_BYTES)
        out = per_u.aggregate(Count(alias_name="groups"), Sum("n", alias_name="n"),
                              Sum("total", alias_name="total"))
        harness.note("ray_processes_peak_rss_mib", _ray_peak_rss_mib())
        return scale.answer(out["groups"], out["n"], out["total"])
    run.__name__ = workload
    return run


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map,
             "per_row_score": per_row_score, "sklearn_inference": sklearn_inference,
             "join_broadcast_write": join_broadcast_write, "join_shuffle_write": join_shuffle_write,
             "dedup_event_id": dedup_event_id, "skew_join": skew_join,
             "daily_features": daily_features, "sort_checksum": sort_checksum,
             **{w: _scale(w) for w in scale.WORKLOADS}}
WORKLOADS.update({name: _tpch(name) for name in ray_data_queries.QUERIES})

if __name__ == "__main__":
    _start()
    try:
        harness.main(VERSIONS, WORKLOADS)
    finally:
        ray_start.stop(CLUSTER)

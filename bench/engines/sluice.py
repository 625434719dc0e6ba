"""sluice engine: the system under test, through its public API only.

- core: the map step is the point of the workload: an arrow-native ``map_batches``
  UDF (pa.Table in, pa.Table out, computed with pyarrow.compute) rather than a
  built-in expression.
- tpch: ``bench/tpch/queries.py`` over ``load_tables``; the result table becomes the
  answer (``bench.suites.tpch.columns_answer``).
- seeds: see ``bench/suites/seeds.py``.  The windowed counts of ``daily_features``
  use window expressions (``col(...).sum().over(...)``, sluice 677c6ec and later).

Threads: SLUICE_NUM_THREADS, set before import.  ``BENCH_SLUICE_ADAPTIVE=0`` (the
runner's ``sluice-noadaptive`` variant) runs with ``sluice.configure(adaptive=False)``;
``BENCH_SLUICE_WARM=1`` (``sluice-warm``) starts the UDF fork server before the clock.
udf: ``map_batches`` with the suite's batch function (worker processes, the default) and
with ``udf.Scorer`` as an actor pool.  scale: the suite's join + aggregate under
``sluice.configure(memory_budget=scale.BUDGET)``.
"""
import os
import statistics
import tempfile

from bench.engines import harness
from bench.suites import core, scale, seeds, tpch, udf

THREADS = harness.threads()
os.environ["SLUICE_NUM_THREADS"] = str(THREADS)
os.environ.setdefault("SLUICE_PROGRESS", "0")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import sluice as sl  # noqa: E402
from sluice import col, when  # noqa: E402

from bench.engines.arrow_udfs import add_net  # noqa: E402
from bench.tpch.queries import QUERIES, load_tables  # noqa: E402

ADAPTIVE = os.environ.get("BENCH_SLUICE_ADAPTIVE", "1") != "0"
if not ADAPTIVE:
    sl.configure(adaptive=False)
WARM = os.environ.get("BENCH_SLUICE_WARM") == "1"

VERSIONS = {"sluice": getattr(sl, "__version__", "unknown"), "pyarrow": pa.__version__,
            **({} if ADAPTIVE else {"adaptive": "off"}), **({"udf workers": "warm"} if WARM else {})}


def _warm_up_udf_workers() -> None:
    """The ``sluice-warm`` variant's set-up, before the clock, as Ray's cluster start is: one
    tiny process UDF, so this process has its fork server (numpy, pyarrow, pandas imported)
    and sluice's worker machinery loaded.  Each timed run still starts its own workers."""
    sl.from_arrow(pa.table({"x": [1]})).map_batches(lambda b: b, batch_format="numpy").to_arrow()


# ---------------------------------------------------------------- core


def scan_filter_project_map(data: str) -> dict:
    ds = sl.read_parquet(f"{data}/lineitem")
    ds = ds.filter((col("l_shipdate") >= core.SHIPDATE_FROM)
                   & (col("l_quantity") < core.QUANTITY_BELOW))
    ds = ds.select(*core.PROJECT)
    ds = ds.map_batches(add_net, batch_format="arrow", compute="threads")  # pyarrow.compute releases the GIL
    rows, total = 0, 0.0
    for batch in ds.iter_batches():
        rows += batch.num_rows
        total += pc.sum(batch["net"]).as_py() or 0.0
    return {"rows": rows, "sum_net": total}


# ---------------------------------------------------------------- tpch


def arrow_answer(table: pa.Table) -> dict:
    return tpch.columns_answer(table.column_names, [c.to_pylist() for c in table.columns])


def _tpch(query: str):
    def run(data: str) -> dict:
        return arrow_answer(QUERIES[query](load_tables(data)).to_arrow())
    run.__name__ = query
    return run


# ---------------------------------------------------------------- seeds


def _read(data, table):
    return sl.read_parquet(f"{data}/{table}")


def _one_row(ds) -> dict:
    return seeds.dict_answer(**ds.to_arrow().to_pylist()[0])


def _write_and_read_back(ds, value: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-sluice-") as tmp:
        ds.write_parquet(f"{tmp}/out")
        back = _read(tmp, "out").agg(groups=sl.count(), n=col("n").sum(), **{value: col(value).sum()})
        return _one_row(back)


def join_broadcast_write(data: str) -> dict:
    out = (_read(data, "events").join(_read(data, "users"), on="user_id")
           .group_by("country", "day").agg(n=sl.count(), spend=col("amount").sum()))
    return _write_and_read_back(out, "spend")


def join_shuffle_write(data: str) -> dict:
    # items (2M rows, ~50 MB) is under the broadcast threshold: ask for the shuffle join
    out = (_read(data, "events").join(_read(data, "items"), on="item_id", strategy="shuffle")
           .group_by("category", "day")
           .agg(n=sl.count(), revenue=(col("amount") * col("price")).sum()))
    return _write_and_read_back(out, "revenue")


def dedup_event_id(data: str) -> dict:
    return _one_row(_read(data, "events").distinct("event_id")
                    .agg(rows=sl.count(), sum_event_id=col("event_id").sum(),
                         amount=col("amount").sum()))


def _reduce_task_note(stats) -> None:
    """Rows read by the reduce tasks of the widest exchange (the join), and hot keys."""
    tasks = stats.reduce_tasks
    if not tasks:
        return
    rows = tasks[max(tasks, key=lambda s: sum(tasks[s]))]
    harness.note("reduce_tasks", {"tasks": len(rows), "slowest_rows": max(rows),
                                  "median_rows": statistics.median(rows), "total_rows": sum(rows)})
    harness.note("skewed_keys", [{"key": str(k.get("key")), "rows": k.get("rows")}
                                 for k in stats.skewed_keys])
    harness.note("split_notes", [n for n in stats.notes if "skew" in n][:5])


def skew_join(data: str) -> dict:
    ds = (_read(data, "skew_fact").join(_read(data, "skew_dim"), on="k", strategy="shuffle")
          .agg(n=sl.count(), amount=col("amount").sum(), weight=col("weight").sum()))
    answer = _one_row(ds)
    _reduce_task_note(ds.stats())
    return answer


def daily_features(data: str) -> dict:
    daily = (_read(data, "events").group_by("user_id", "day")
             .agg(n_day=sl.count(), spend=col("amount").sum())
             .with_columns(week=col("day") // seeds.WEEK))
    features = (daily.with_columns(n_week=col("n_day").sum().over(["user_id", "week"]),
                                   n_user=col("n_day").sum().over("user_id"))
                .join(_read(data, "users"), on="user_id")
                .with_columns(share_week=col("n_day") / col("n_week"),
                              share_user=col("n_week") / col("n_user"),
                              avg_spend=col("spend") / col("n_day"),
                              heavy=when(col("n_week") >= seeds.HEAVY_WEEK).then(1).otherwise(0))
                .with_columns(weighted=col("segment") * col("avg_spend")))
    return _one_row(features.agg(
        rows=sl.count(), n_week=col("n_week").sum(), n_user=col("n_user").sum(),
        share_week=col("share_week").sum(), share_user=col("share_user").sum(),
        avg_spend=col("avg_spend").sum(), heavy=col("heavy").sum(),
        weighted=col("weighted").sum(), countries=col("country").count_distinct()))


def sort_checksum(data: str) -> dict:
    ds = _read(data, "events").sort(["user_id", "day", "event_id"]).select("event_id")
    pos, checksum = 0, 0
    for batch in ds.iter_batches():
        ids = batch.column(0).to_numpy()
        checksum += int(np.dot(np.arange(pos, pos + len(ids), dtype=np.int64),
                               ids % seeds.CHECKSUM_MOD))
        pos += len(ids)
    return seeds.dict_answer(rows=pos, checksum=checksum)


# ---------------------------------------------------------------- udf


def per_row_score(data: str) -> dict:
    """The per-row loop in worker processes (map_batches' default compute="processes")."""
    from bench.engines import udf_answers
    ds = sl.read_parquet(f"{data}/rows").map_batches(udf.score_batch, batch_format="numpy")
    return udf_answers.score(ds.iter_batches())


def sklearn_inference(data: str) -> dict:
    """An actor pool of THREADS workers, each fitting the model once in __init__."""
    from bench.engines import udf_answers
    ds = sl.read_parquet(f"{data}/features").map_batches(
        udf.Scorer, batch_format="numpy", concurrency=THREADS, fn_constructor_args=(f"{data}/train",))
    return udf_answers.inference(ds.iter_batches())


# ---------------------------------------------------------------- scale


def _scale(workload: str):
    def run(data: str) -> dict:
        sl.configure(memory_budget=scale.BUDGET)   # the suite's fixed budget, whatever the data size
        root = scale.data_dir(data, workload)
        out = (_read(root, "fact").join(_read(root, "dim"), on="k")
               .group_by("u").agg(n=sl.count(), total=(col("v") * col("w")).sum())
               .agg(groups=sl.count(), n=col("n").sum(), total=col("total").sum()))
        row = out.to_arrow().to_pylist()[0]
        harness.note("spilled_bytes", getattr(out.stats(), "spilled_bytes", None))
        return scale.answer(row["groups"], row["n"], row["total"])
    run.__name__ = workload
    return run


WORKLOADS = {
    **{w: _scale(w) for w in scale.WORKLOADS},
    "per_row_score": per_row_score,
    "sklearn_inference": sklearn_inference,
    "scan_filter_project_map": scan_filter_project_map,
    **{q: _tpch(q) for q in tpch.WORKLOADS},
    "join_broadcast_write": join_broadcast_write,
    "join_shuffle_write": join_shuffle_write,
    "dedup_event_id": dedup_event_id,
    "skew_join": skew_join,
    "daily_features": daily_features,
    "sort_checksum": sort_checksum,
}

if __name__ == "__main__":
    if WARM:
        _warm_up_udf_workers()
    harness.main(VERSIONS, WORKLOADS)

"""Polars engine: the lazy-API baseline sluice's targets are measured against.

POLARS_MAX_THREADS must be set before polars is imported, hence the import
order below.  Default ``collect()`` engine, as a typical user would run it.
TPC-H: ``bench/tpch/polars_queries.py``; seeds: below, mirroring the SQL of
``bench/suites/seeds.py`` (windows with ``.over()``).
"""
import os
import tempfile

from bench.engines import harness
from bench.suites import core, scale, seeds, tpch

THREADS = harness.threads()
os.environ["POLARS_MAX_THREADS"] = str(THREADS)

import polars as pl  # noqa: E402  (after POLARS_MAX_THREADS)

from bench.tpch import polars_queries  # noqa: E402

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


def _tpch(query: str):
    def run(data: str) -> dict:
        df = polars_queries.QUERIES[query](polars_queries.load_tables(data)).collect()
        return tpch.rows_answer(df.columns, df.rows())
    run.__name__ = query
    return run


# ---------------------------------------------------------------- seeds

c = pl.col


def _scan(data, table) -> pl.LazyFrame:
    return pl.scan_parquet(f"{data}/{table}/*.parquet")


def _one_row(lf: pl.LazyFrame) -> dict:
    return seeds.dict_answer(**lf.collect().row(0, named=True))


def _write_and_read_back(lf: pl.LazyFrame, value: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-polars-") as tmp:
        lf.sink_parquet(f"{tmp}/part-0.parquet")
        return _one_row(pl.scan_parquet(f"{tmp}/*.parquet")
                        .select(groups=pl.len(), n=c("n").sum(), **{value: c(value).sum()}))


def join_broadcast_write(data: str) -> dict:
    out = (_scan(data, "events").join(_scan(data, "users"), on="user_id")
           .group_by("country", "day").agg(n=pl.len(), spend=c("amount").sum()))
    return _write_and_read_back(out, "spend")


def join_shuffle_write(data: str) -> dict:
    out = (_scan(data, "events").join(_scan(data, "items"), on="item_id")
           .group_by("category", "day").agg(n=pl.len(), revenue=(c("amount") * c("price")).sum()))
    return _write_and_read_back(out, "revenue")


def dedup_event_id(data: str) -> dict:
    return _one_row(_scan(data, "events").unique(subset="event_id", keep="any")
                    .select(rows=pl.len(), sum_event_id=c("event_id").sum(),
                            amount=c("amount").sum()))


def skew_join(data: str) -> dict:
    return _one_row(_scan(data, "skew_fact").join(_scan(data, "skew_dim"), on="k")
                    .select(n=pl.len(), amount=c("amount").sum(), weight=c("weight").sum()))


def daily_features(data: str) -> dict:
    features = (
        _scan(data, "events").group_by("user_id", "day")
        .agg(n_day=pl.len().cast(pl.Int64), spend=c("amount").sum())
        .with_columns(n_week=c("n_day").sum().over("user_id", c("day") // seeds.WEEK),
                      n_user=c("n_day").sum().over("user_id"))
        .join(_scan(data, "users"), on="user_id")
        .with_columns(share_week=c("n_day") / c("n_week"),
                      share_user=c("n_week") / c("n_user"),
                      avg_spend=c("spend") / c("n_day"),
                      heavy=pl.when(c("n_week") >= seeds.HEAVY_WEEK).then(1).otherwise(0))
        .with_columns(weighted=c("segment") * c("avg_spend")))
    return _one_row(features.select(
        rows=pl.len(), n_week=c("n_week").sum(), n_user=c("n_user").sum(),
        share_week=c("share_week").sum(), share_user=c("share_user").sum(),
        avg_spend=c("avg_spend").sum(), heavy=c("heavy").sum(), weighted=c("weighted").sum(),
        countries=c("country").n_unique()))


def sort_checksum(data: str) -> dict:
    return _one_row(
        _scan(data, "events").sort("user_id", "day", "event_id")
        .select(rows=pl.len(),
                checksum=(pl.int_range(pl.len(), dtype=pl.Int64)
                          * (c("event_id") % seeds.CHECKSUM_MOD)).sum()))


def _scale(workload: str):
    def run(data: str) -> dict:
        root = scale.data_dir(data, workload)   # Polars has no memory budget: in memory, as it is
        out = (_scan(root, "fact").join(_scan(root, "dim"), on="k")
               .group_by("u").agg(n=pl.len(), total=(c("v") * c("w")).sum())
               .select(groups=pl.len(), n=c("n").sum(), total=c("total").sum()).collect())
        return scale.answer(*out.row(0))
    run.__name__ = workload
    return run


WORKLOADS = {
    "scan_filter_project_map": scan_filter_project_map,
    **{w: _scale(w) for w in scale.WORKLOADS},
    **{q: _tpch(q) for q in tpch.WORKLOADS},
    "join_broadcast_write": join_broadcast_write,
    "join_shuffle_write": join_shuffle_write,
    "dedup_event_id": dedup_event_id,
    "skew_join": skew_join,
    "daily_features": daily_features,
    "sort_checksum": sort_checksum,
}

if __name__ == "__main__":
    assert pl.thread_pool_size() == THREADS, "POLARS_MAX_THREADS not honoured"
    harness.main(VERSIONS, WORKLOADS)

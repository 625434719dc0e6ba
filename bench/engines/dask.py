"""Dask engine: ``dask.dataframe`` (dask-expr) on the local threaded scheduler.

``BENCH_THREADS`` becomes ``num_workers`` of the threads scheduler, the default
scheduler of dask.dataframe when no distributed Client exists, which is how Dask
runs on one machine without extra setup.  Arrow's own CPU pool (used by the
Parquet reader and pyarrow-backed string/date columns) follows OMP_NUM_THREADS,
which the runner sets to the same budget.

TPC-H: ``bench/tpch/dask_queries.py`` (DataFrame API; see its docstring for how
subqueries are rewritten and why money columns are float64).

seeds: ``merge`` (the one-partition users table is joined without shuffling events; items
is hash-shuffled), named ``groupby().agg``, ``drop_duplicates(subset=...)``,
``sort_values`` on the three keys with the row position as a ``cumsum``; writes
``to_parquet`` read back with ``read_parquet``.  Dask has no window expressions:
daily_features shuffles the per user-day table on user_id and runs pandas'
``groupby().transform`` in ``map_partitions`` (see that function).  scale: merge +
group-by + aggregate; no memory budget: the threaded scheduler has no memory limit (that
belongs to dask.distributed's workers, not used here).

udf: ``map_partitions`` over ``read_parquet`` (a partition per file), on the same threaded
scheduler, Dask's default for dask.dataframe.  per_row_score runs ``udf.score_columns`` over
each partition's columns as Python lists; sklearn_inference predicts each partition with a
``udf.Scorer`` built once per process (a module-level cache keyed by the train directory)
and shared by the threads: Dask has no actor pools.  Threads share one interpreter, so the
pure-Python per-row loop holds the GIL throughout and runs at one core's speed whatever
``num_workers`` is; the RandomForest's tree traversal runs in Cython without the GIL, so the
threads overlap there (the numpy/pandas glue around it still takes the GIL).  The output
partitions come back as pandas frames and are reduced by ``bench.engines.udf_answers`` as
pyarrow tables, as for every engine.  The venv adds scikit-learn.
"""
import tempfile
import threading

from bench.engines import harness
from bench.suites import core, scale, seeds, udf
from bench.suites.tpch import rows_answer

THREADS = harness.threads()

import dask
import dask.dataframe as dd
import pandas
import pyarrow

dask.config.set(scheduler="threads", num_workers=THREADS)

from bench.tpch import dask_queries

VERSIONS = {"dask": dask.__version__, "pandas": pandas.__version__,
            "pyarrow": pyarrow.__version__}


def scan_filter_project_map(data: str) -> dict:
    df = dd.read_parquet(f"{data}/lineitem/")
    df = df[(df.l_shipdate >= core.SHIPDATE_FROM) & (df.l_quantity < core.QUANTITY_BELOW)]
    df = df[list(core.PROJECT)]
    price = df.l_extendedprice.astype("float64")
    df = df.assign(net=price * (1 - df.l_discount.astype("float64"))
                   * (1 + df.l_tax.astype("float64")))
    rows, sum_net = dask.compute(df.net.size, df.net.sum())
    return {"rows": int(rows), "sum_net": float(sum_net or 0.0)}


def _tpch(name: str):
    query = dask_queries.QUERIES[name]

    def run(data: str) -> dict:
        out = query(dask_queries.load_tables(data))
        return rows_answer(list(out.columns), out.itertuples(index=False, name=None))
    run.__name__ = name
    return run


# ---------------------------------------------------------------- seeds


def _read(data: str, table: str):
    return dd.read_parquet(f"{data}/{table}/")


def _answer(**lazy) -> dict:
    """One ``dask.compute`` for all the figures (they share one graph)."""
    return seeds.dict_answer(**dict(zip(lazy, dask.compute(*lazy.values()))))


def _write_and_read_back(df, value: str) -> dict:
    """``to_parquet`` into a fresh directory (one file per partition), then the read-back
    of ``seeds.READ_BACK``: groups, summed n, summed value."""
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        df.to_parquet(f"{tmp}/out", write_index=False)
        back = dd.read_parquet(f"{tmp}/out/")
        return _answer(groups=back.shape[0], n=back.n.sum(), **{value: back[value].sum()})


def join_broadcast_write(data: str) -> dict:
    """``merge`` with the one-partition users table: dask-expr joins it to every events
    partition without shuffling events (its broadcast)."""
    joined = _read(data, "events").merge(_read(data, "users"), on="user_id")
    out = joined.groupby(["country", "day"]).agg(n=("amount", "size"), spend=("amount", "sum"))
    return _write_and_read_back(out.reset_index(), "spend")


def join_shuffle_write(data: str) -> dict:
    """``merge`` of two multi-partition tables: a hash shuffle of both sides."""
    joined = _read(data, "events").merge(_read(data, "items"), on="item_id")
    joined = joined.assign(revenue=joined.amount * joined.price)
    out = joined.groupby(["category", "day"]).agg(n=("revenue", "size"), revenue=("revenue", "sum"))
    return _write_and_read_back(out.reset_index(), "revenue")


def dedup_event_id(data: str) -> dict:
    events = _read(data, "events").drop_duplicates(subset="event_id")
    return _answer(rows=events.shape[0], sum_event_id=events.event_id.sum(), amount=events.amount.sum())


def skew_join(data: str) -> dict:
    joined = _read(data, "skew_fact").merge(_read(data, "skew_dim"), on="k")
    return _answer(n=joined.shape[0], amount=joined.amount.sum(), weight=joined.weight.sum())


def _windows(daily: pandas.DataFrame) -> pandas.DataFrame:
    """Both windows of one partition holding whole users: pandas' groupby-transform."""
    week = daily.day // seeds.WEEK
    return daily.assign(n_week=daily.groupby([daily.user_id, week]).n_day.transform("sum"),
                        n_user=daily.groupby("user_id").n_day.transform("sum"))


def daily_features(data: str) -> dict:
    """Dask has no window expressions, and its ``groupby().transform`` returns a series that
    cannot be assigned back to a frame partitioned differently; so the windows are what
    Dask's documentation suggests for per-group work: ``shuffle`` on the partition key
    (user_id, which both windows share) and pandas' ``groupby().transform`` in
    ``map_partitions``."""
    daily = (_read(data, "events").groupby(["user_id", "day"])
             .agg(n_day=("amount", "size"), spend=("amount", "sum")).reset_index())
    meta = daily._meta.assign(n_week=pandas.Series(dtype="int64"), n_user=pandas.Series(dtype="int64"))
    windows = daily.shuffle("user_id").map_partitions(_windows, meta=meta)
    f = windows.merge(_read(data, "users"), on="user_id")
    f = f.assign(share_week=f.n_day / f.n_week, share_user=f.n_week / f.n_user,
                 avg_spend=f.spend / f.n_day, heavy=(f.n_week >= seeds.HEAVY_WEEK).astype("int64"))
    f = f.assign(weighted=f.segment * f.avg_spend)
    return _answer(rows=f.shape[0], n_week=f.n_week.sum(), n_user=f.n_user.sum(),
                   share_week=f.share_week.sum(), share_user=f.share_user.sum(),
                   avg_spend=f.avg_spend.sum(), heavy=f.heavy.sum(), weighted=f.weighted.sum(),
                   countries=f.country.nunique())


def sort_checksum(data: str) -> dict:
    """``sort_values`` on the three keys (range-partitioned on user_id, so equal user_ids
    share a partition, then sorted within partitions), and the row position as a
    cumulative sum over the sorted frame."""
    s = _read(data, "events")[["user_id", "day", "event_id"]].sort_values(["user_id", "day", "event_id"])
    s = s.assign(one=1)
    pos = s.one.cumsum() - 1
    return _answer(rows=s.shape[0], checksum=(pos * (s.event_id % seeds.CHECKSUM_MOD)).sum())


# ---------------------------------------------------------------- scale
# No memory budget: the threaded scheduler has none (memory limits belong to
# dask.distributed's workers, which this module does not use).


def _scale(workload: str):
    def run(data: str) -> dict:
        root = scale.data_dir(data, workload)
        joined = _read(root, "fact").merge(_read(root, "dim"), on="k")
        joined = joined.assign(vw=joined.v * joined.w)
        per_u = joined.groupby("u").agg(n=("vw", "size"), total=("vw", "sum"))
        groups, n, total = dask.compute(per_u.shape[0], per_u.n.sum(), per_u.total.sum())
        return scale.answer(groups, n, total)
    run.__name__ = workload
    return run


# ---------------------------------------------------------------- udf


def _arrow_parts(df) -> list:
    """Every partition of ``df`` computed, as pyarrow tables, for ``udf_answers``."""
    return [pyarrow.Table.from_pandas(p, preserve_index=False) for p in dask.compute(*df.to_delayed())]


def _score_partition(part: pandas.DataFrame) -> pandas.DataFrame:
    scores = udf.score_columns(part["x"].tolist(), part["a"].tolist(), part["b"].tolist())
    return pandas.DataFrame({"score": pandas.Series(scores, dtype="float64", index=part.index)})


def per_row_score(data: str) -> dict:
    from bench.engines import udf_answers
    rows = dd.read_parquet(f"{data}/rows/", columns=["x", "a", "b"])
    out = rows.map_partitions(_score_partition, meta={"score": "float64"})
    return udf_answers.score(_arrow_parts(out))


_SCORERS = {}                       # train dir -> udf.Scorer, one per process
_SCORERS_LOCK = threading.Lock()    # the threads wait for one fit rather than each fitting


def _scorer(train_dir: str):
    with _SCORERS_LOCK:
        if train_dir not in _SCORERS:
            _SCORERS[train_dir] = udf.Scorer(train_dir)
        return _SCORERS[train_dir]


def _predict_partition(part: pandas.DataFrame, train_dir: str) -> pandas.DataFrame:
    pred = _scorer(train_dir).predict({f: part[f].to_numpy() for f in udf.FEATURES})
    return pandas.DataFrame({"id": part["id"].to_numpy(), "pred": pred}, index=part.index)


def sklearn_inference(data: str) -> dict:
    """``_predict_partition`` is taken from this module imported by name: run as ``__main__``,
    Dask would tokenize the function by pickling it by value, with its globals, and the lock
    cannot be pickled (TokenizationError); by name it is a plain module reference."""
    import importlib
    from bench.engines import udf_answers
    predict = importlib.import_module("bench.engines.dask")._predict_partition
    features = dd.read_parquet(f"{data}/features/", columns=["id", *udf.FEATURES])
    out = features.map_partitions(predict, f"{data}/train",
                                  meta={"id": "int64", "pred": "int64"})
    return udf_answers.inference(_arrow_parts(out))


WORKLOADS = {"scan_filter_project_map": scan_filter_project_map,
             "per_row_score": per_row_score, "sklearn_inference": sklearn_inference,
             "join_broadcast_write": join_broadcast_write, "join_shuffle_write": join_shuffle_write,
             "dedup_event_id": dedup_event_id, "skew_join": skew_join,
             "daily_features": daily_features, "sort_checksum": sort_checksum,
             **{w: _scale(w) for w in scale.WORKLOADS}}
WORKLOADS.update({name: _tpch(name) for name in dask_queries.QUERIES})

if __name__ == "__main__":
    harness.main(VERSIONS, WORKLOADS)

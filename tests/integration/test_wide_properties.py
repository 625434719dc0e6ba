"""Hypothesis properties: joins, aggregations, distinct and sort equal DuckDB on random data.

Each example draws small tables (0-300 rows) with a random key distribution (a small domain, a
wide one, unique keys, one key holding half the rows, all-null keys, empty sides), splits them into
a few blocks, and draws the engine settings too: adaptive on or off, tiny or default partition
targets, broadcast thresholds that force or forbid broadcasting, and skew detection that fires on
a few bytes, and in-memory fusion on or off (one Polars query for the whole subtree, or the
staged plan with its exchanges). Whatever the settings, the result must be the one DuckDB gives.

Where sluice semantics are more defined than SQL, DuckDB is told (see test_wide_oracle.py): input
order decides first/last and keep=first/last (`rn` is the row number), ties in a sort keep input
order, integer sums are cast from HUGEINT to BIGINT, collect_list is compared sorted.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from conftest import assert_same, q
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_wide_oracle import blocks, join_sql

import sluice as sl
from sluice import col

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
DISTRIBUTIONS = ("small", "wide", "unique", "hot", "all_null", "empty")


# ---------------------------------------------------------------- strategies


engine_settings = st.fixed_dictionaries({
    "adaptive": st.booleans(),
    "target_partition_bytes": st.sampled_from([128, 1024, 64 * 1024, 64 * 1024 * 1024]),
    "broadcast_fraction": st.sampled_from([0.0, 1 / 16, 1.0]),
    "skew": st.booleans(),
    "fuse": st.booleans(),
})


def apply_engine(settings_: dict) -> None:
    skew = settings_["skew"]
    sl.configure(adaptive=settings_["adaptive"], target_partition_bytes=settings_["target_partition_bytes"],
                 broadcast_fraction=settings_["broadcast_fraction"], skew_factor=2.0 if skew else 5.0,
                 skew_min_bytes=0 if skew else 16 * 1024 * 1024, fuse_fraction=1 / 8 if settings_["fuse"] else 0)


def make_keys(rng, n: int, dist: str, width: pa.DataType, null_rate: float) -> pa.Array:
    if dist == "all_null":
        return pa.nulls(n, width)
    if dist == "small":
        values = rng.integers(0, 4, n)
    elif dist == "wide":
        values = rng.integers(0, 400, n)
    elif dist == "unique":
        values = rng.permutation(max(2 * n, 1))[:n]
    else:  # "hot" (and "empty", which has no rows): one key holds about half of the rows
        values = np.where(rng.random(n) < 0.5, 3, rng.integers(0, 40, n))
    return pa.array(values, width, mask=rng.random(n) < null_rate)


@st.composite
def side(draw, prefix: str):
    """One join input: keys k (int32 or int64) and k2 (string), an overlapping `v`, and a row number."""
    dist = draw(st.sampled_from(DISTRIBUTIONS))
    n = 0 if dist == "empty" else draw(st.integers(0, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    null_rate = draw(st.sampled_from([0.0, 0.1, 0.5]))
    width = draw(st.sampled_from([pa.int32(), pa.int64()]))
    table = pa.table({
        "k": make_keys(rng, n, dist, width, null_rate),
        "k2": pa.array(np.array(["a", "b"])[rng.integers(0, 2, n)], pa.string(), mask=rng.random(n) < null_rate),
        "v": pa.array(rng.integers(-5, 5, n), pa.int64(), mask=rng.random(n) < 0.2),
        f"{prefix}rn": pa.array(np.arange(n), pa.int64()),
    })
    return table, draw(st.integers(1, 3))


# ---------------------------------------------------------------- joins


@SETTINGS
@given(left=side("l"), right=side("r"), how=st.sampled_from(["inner", "left", "right", "full", "semi", "anti", "cross"]),
       strategy=st.sampled_from(["auto", "broadcast", "shuffle"]), two_keys=st.booleans(),
       after=st.sampled_from([None, "filter_left", "filter_right", "select", "count"]), engine=engine_settings)
def test_join_equals_duckdb(runner, duck, left, right, how, strategy, two_keys, after, engine):
    # `after` puts a filter or a projection above the join, so the pushdown and pruning rules run too
    (lt, lparts), (rt, rparts) = left, right
    if how == "cross":
        lt, rt = lt.slice(0, 60), rt.slice(0, 60)
    apply_engine(engine)
    keys = ["k", "k2"] if two_keys else ["k"]
    kwargs = {} if how == "cross" else {"on": keys}
    ds = blocks(lt, lparts).join(blocks(rt, rparts), how=how, strategy=strategy, **kwargs)
    sql = join_sql(lt.column_names, rt.column_names, [] if how == "cross" else keys,
                   [] if how == "cross" else keys, how, "_right")
    semi = how in ("semi", "anti")
    if after == "filter_left":
        ds, sql = ds.filter(col("v") > 0), f"SELECT * FROM ({sql}) WHERE v > 0"
    elif after == "filter_right" and not semi:
        ds = ds.filter(col("v_right").is_null() | (col("rrn") < 100))
        sql = f"SELECT * FROM ({sql}) WHERE v_right IS NULL OR rrn < 100"
    elif after == "select":
        names = ["k", "lrn"] if semi else ["rrn", "k"] + (["v_right"] if how != "cross" else [])
        ds, sql = ds.select(*names), f"SELECT {', '.join(names)} FROM ({sql})"
    expected = q(duck, sql, L=lt, R=rt)
    if after == "count":
        assert ds.count() == expected.num_rows
        return
    assert_same(ds.to_arrow(), expected)


@SETTINGS
@given(left=side("l"), right=side("r"), how=st.sampled_from(["inner", "left", "right", "full", "semi", "anti"]),
       engine=engine_settings)
def test_join_strategies_agree(runner, duck, left, right, how, engine):
    # every strategy returns the same multiset of rows, and it is DuckDB's
    (lt, lparts), (rt, rparts) = left, right
    apply_engine(engine)
    expected = q(duck, join_sql(lt.column_names, rt.column_names, ["k"], ["k"], how, "_x"), L=lt, R=rt)
    for strategy in ("broadcast", "shuffle"):
        ds = blocks(lt, lparts).join(blocks(rt, rparts), on="k", how=how, suffix="_x", strategy=strategy)
        assert_same(ds.to_arrow(), expected)


# ---------------------------------------------------------------- aggregations


@st.composite
def grouped_table(draw):
    dist = draw(st.sampled_from(DISTRIBUTIONS))
    n = 0 if dist == "empty" else draw(st.integers(0, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    null_rate = draw(st.sampled_from([0.0, 0.1, 0.6, 1.0]))
    x = rng.integers(-50, 50, n)
    table = pa.table({
        "rn": pa.array(np.arange(n), pa.int64()),
        "g": make_keys(rng, n, dist, pa.int64(), draw(st.sampled_from([0.0, 0.2]))),
        "h": pa.array(np.array(["p", "q", "r"])[rng.integers(0, 3, n)], pa.string(), mask=rng.random(n) < 0.1),
        "x": pa.array(x, pa.int64(), mask=rng.random(n) < null_rate),
        "y": pa.array(x / 4, pa.float64(), mask=rng.random(n) < null_rate),
    })
    return table, draw(st.integers(1, 4))


AGGS = {
    "n": (lambda: sl.count(), "count(*)"),
    "cx": (lambda: col("x").count(), "count(x)"),
    "sx": (lambda: col("x").sum(), "sum(x)::BIGINT"),
    "sy": (lambda: col("y").sum(), "sum(y)"),
    "mx": (lambda: col("x").mean(), "avg(x)"),
    "lo": (lambda: col("x").min(), "min(x)"),
    "hi": (lambda: col("h").max(), "max(h)"),
    "fx": (lambda: col("x").first(), "first(x ORDER BY rn)"),
    "ly": (lambda: col("y").last(), "last(y ORDER BY rn)"),
    "sd": (lambda: col("y").std(), "stddev_samp(y)"),
    "vr": (lambda: col("x").var(), "var_samp(x)"),
    "dx": (lambda: col("x").count_distinct(), "count(DISTINCT x)"),
    "md": (lambda: col("y").median(), "median(y)"),
    "lst": (lambda: col("x").collect_list(), "list_sort(list(x), 'ASC', 'NULLS LAST')"),
}
HOLISTIC = ("dx", "md", "lst")


def _ordered_table(n: int) -> pa.Table:
    x = np.arange(n) % 7 - 3
    return pa.table({"rn": pa.array(np.arange(n), pa.int64()), "g": pa.array(np.arange(n) % 3, pa.int64()),
                     "h": pa.array(np.array(["p", "q"])[np.arange(n) % 2]), "x": pa.array(x, pa.int64()),
                     "y": pa.array(x / 4, pa.float64())})


_DEFAULT_ENGINE = {"adaptive": True, "target_partition_bytes": 1024, "broadcast_fraction": 1 / 16, "skew": False, "fuse": False}


@SETTINGS
@example(data=(_ordered_table(90), 3), keys=(), names=["fx", "ly", "n"], quantile=None, window=(0.6, 1.0),
         engine=_DEFAULT_ENGINE)
@example(data=(_ordered_table(90), 3), keys=(), names=["fx", "ly", "sx"], quantile=None, window=(0.0, 0.4),
         engine=_DEFAULT_ENGINE)
@given(data=grouped_table(), keys=st.sampled_from([(), ("g",), ("g", "h"), ("h",)]),
       names=st.lists(st.sampled_from(sorted(AGGS)), min_size=1, max_size=6, unique=True),
       quantile=st.sampled_from([None, 0.0, 0.1, 0.5, 0.73, 1.0]),
       window=st.sampled_from([None, (0.0, 0.4), (0.3, 0.7), (0.6, 1.0), (2.0, 3.0)]), engine=engine_settings)
def test_aggregate_equals_duckdb(runner, duck, data, keys, names, quantile, window, engine):
    # `window` filters the rows to a range of rn, so some blocks reach the aggregation empty
    table, parts = data
    apply_engine(engine)
    aggs = {name: AGGS[name][0]() for name in names}
    sql = [f"{AGGS[name][1]} AS {name}" for name in names]
    if quantile is not None:
        aggs["qx"] = col("x").quantile(quantile)
        sql.append(f"quantile_cont(x, {quantile}) AS qx")
    ds = blocks(table, parts)
    if window is not None:
        lo, hi = int(window[0] * table.num_rows), int(window[1] * table.num_rows)
        ds, table = ds.filter((col("rn") >= lo) & (col("rn") < hi)), table.slice(lo, max(0, hi - lo))
    actual = (ds.group_by(*keys) if keys else ds).agg(**aggs).to_arrow()
    group = ", ".join(keys)
    expected = q(duck, f"SELECT {group + ', ' if keys else ''}{', '.join(sql)} FROM t"
                       f"{' GROUP BY ' + group if keys else ''}", t=table)
    if "lst" in names:
        actual = q(duck, "SELECT * REPLACE (list_sort(lst, 'ASC', 'NULLS LAST') AS lst) FROM a", a=actual)
        if not keys and table.num_rows == 0:
            # sluice's collect_list over no rows is an empty list; DuckDB's list() is NULL
            expected = expected.set_column(expected.column_names.index("lst"), "lst",
                                           pa.array([[]], expected.schema.field("lst").type))
    assert_same(actual, expected, rel=1e-7, abs_=1e-9)
    if not keys:
        assert actual.num_rows == 1


# ---------------------------------------------------------------- distinct


@SETTINGS
@given(data=grouped_table(), subset=st.sampled_from([None, ("g",), ("g", "h"), ("h", "x")]),
       keep=st.sampled_from(["any", "first", "last"]), engine=engine_settings)
def test_distinct_equals_duckdb(runner, duck, data, subset, keep, engine):
    table, parts = data
    apply_engine(engine)
    if subset is None:
        # whole rows: drop the unique row number so duplicates exist
        table = table.drop_columns(["rn"])
        actual = blocks(table, parts).distinct(keep=keep).to_arrow()
        assert_same(actual, q(duck, "SELECT DISTINCT * FROM t", t=table))
        return
    actual = blocks(table, parts).distinct(subset=list(subset), keep=keep).to_arrow()
    cols = ", ".join(subset)
    if keep == "any":
        assert_same(actual.select(list(subset)), q(duck, f"SELECT DISTINCT {cols} FROM t", t=table))
        inputs = set(table["rn"].to_pylist())
        assert set(actual["rn"].to_pylist()) <= inputs
        return
    order = "rn" if keep == "first" else "rn DESC"
    expected = q(duck, f"SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY {cols} ORDER BY {order}) = 1",
                 t=table)
    assert_same(actual, expected)


# ---------------------------------------------------------------- sort and top-k


@SETTINGS
@given(data=grouped_table(), by=st.sampled_from([("g",), ("h", "g"), ("x", "h"), ("y",)]),
       flags=st.data(), limit=st.sampled_from([None, 0, 1, 5, 50, 1000]), engine=engine_settings)
def test_sort_and_top_k_equal_duckdb(runner, duck, data, by, flags, limit, engine):
    table, parts = data
    apply_engine(engine)
    descending = [flags.draw(st.booleans()) for _ in by]
    nulls_last = [flags.draw(st.booleans()) for _ in by]
    ds = blocks(table, parts).sort(list(by), descending=descending, nulls_last=nulls_last)
    if limit is not None:
        ds = ds.limit(limit)
    order = ", ".join(f"{b} {'DESC' if d else 'ASC'} NULLS {'LAST' if n else 'FIRST'}"
                      for b, d, n in zip(by, descending, nulls_last))
    # ties keep input order: rn breaks them on the DuckDB side
    sql = f"SELECT * FROM t ORDER BY {order}, rn" + (f" LIMIT {limit}" if limit is not None else "")
    assert_same(ds.to_arrow(), q(duck, sql, t=table), ordered=True)


@SETTINGS
@given(data=grouped_table(), by=st.sampled_from([("y",), ("h", "x")]), descending=st.booleans(),
       then=st.sampled_from(["first", "last", "agg"]), engine=engine_settings)
def test_sorted_order_flows_into_order_sensitive_operations(runner, duck, data, by, descending, then, engine):
    # a sort's output order is the input order of what follows: distinct(keep=first/last) and
    # first/last after a sort pick by the sorted order (ties by input order, i.e. rn)
    table, parts = data
    apply_engine(engine)
    ds = blocks(table, parts).sort(list(by), descending=descending, nulls_last=True)
    order = ", ".join(f"{b} {'DESC' if descending else 'ASC'} NULLS LAST" for b in by) + ", rn"
    if then == "agg":
        actual = ds.group_by("g").agg(f=col("rn").first(), l=col("x").last(), n=sl.count()).to_arrow()
        expected = q(duck, f"SELECT g, first(rn ORDER BY {order}) AS f, last(x ORDER BY {order}) AS l, "
                           f"count(*) AS n FROM t GROUP BY g", t=table)
    else:
        actual = ds.distinct(subset=["g"], keep=then).to_arrow()
        window = order if then == "first" else ", ".join(
            f"{b} {'ASC' if descending else 'DESC'} NULLS FIRST" for b in by) + ", rn DESC"
        expected = q(duck, f"SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY g ORDER BY {window}) = 1",
                     t=table)
    assert_same(actual, expected)

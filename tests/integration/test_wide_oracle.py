"""DuckDB as the oracle for the wide operations: joins, aggregations, distinct, sort, top-k, repartition.

Every join type runs with each strategy (broadcast forced, shuffle forced, auto) over keys with
nulls, duplicates on both sides, multi-column keys and keys of different integer widths; the
engine settings are pushed to tiny partitions and thresholds so the shuffle paths (coalescing,
skew splitting, the adaptive switch to broadcast, spilling, the range-partitioned sort over many
partitions) run on data small enough for the test suite.

Where sluice defines more than SQL does, the DuckDB side is written to match, and says why:
- `first`/`last`/row order: sluice keeps input order, so the DuckDB side orders by a row number
  column `rn` (`first(x ORDER BY rn)`, `ORDER BY key, rn` for ties in a sort).
- `sum` of integers is BIGINT in sluice, HUGEINT (a decimal in Arrow) in DuckDB: cast to BIGINT.
- `collect_list` order within a group is compared after sorting each list.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from conftest import assert_same, q, wide_table

import sluice as sl
from sluice import col

# what these tests check happens in exchanges: plan them even for small inputs (no fusion)
pytestmark = pytest.mark.usefixtures("staged")

HOWS = ("inner", "left", "right", "full", "semi", "anti", "cross")
STRATEGIES = ("broadcast", "shuffle", "auto")


# ---------------------------------------------------------------- helpers


def blocks(table: pa.Table, parts: int = 1) -> sl.Dataset:
    """A dataset over `table` read as `parts` blocks (a union of slices keeps the row order)."""
    if parts <= 1 or table.num_rows < 2:
        return sl.from_arrow(table)
    size = -(-table.num_rows // parts)
    pieces = [sl.from_arrow(table.slice(i, size)) for i in range(0, table.num_rows, size)]
    return pieces[0].union(*pieces[1:]) if len(pieces) > 1 else pieces[0]


def engine(strategy: str = "auto", **settings) -> None:
    """Settings that make a forced strategy mean what it says: `auto` may still pick either side."""
    base = {"adaptive": True, "target_partition_bytes": "64KiB"}
    base.update(settings)
    sl.configure(**base)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def join_sql(lnames, rnames, left_on, right_on, how, suffix) -> str:
    """The DuckDB query with sluice's output columns: coalesced keys, suffixed right copies."""
    cond = " AND ".join(f"l.{_ident(a)} = r.{_ident(b)}" for a, b in zip(left_on, right_on)) or "true"
    if how in ("semi", "anti"):
        # EXISTS semantics: a null key matches nothing, so anti keeps it (not NOT IN semantics)
        neg = "NOT " if how == "anti" else ""
        return (f"SELECT {', '.join('l.' + _ident(n) for n in lnames)} FROM L AS l "
                f"WHERE {neg}EXISTS (SELECT 1 FROM R AS r WHERE {cond})")
    out = []
    if how == "right":
        left_rest = [n for n in lnames if n not in left_on]
        out += [f"l.{_ident(n)}" for n in left_rest]
        out += [f"r.{_ident(n)} AS {_ident(n + suffix if n in left_rest else n)}" for n in rnames]
    else:
        for n in lnames:
            if n in left_on and how == "full":
                other = right_on[left_on.index(n)]
                out.append(f"coalesce(l.{_ident(n)}, r.{_ident(other)}) AS {_ident(n)}")
            else:
                out.append(f"l.{_ident(n)}")
        right_rest = [n for n in rnames if n not in right_on]
        out += [f"r.{_ident(n)} AS {_ident(n + suffix if n in lnames else n)}" for n in right_rest]
    if how == "cross":
        return f"SELECT {', '.join(out)} FROM L AS l CROSS JOIN R AS r"
    kind = {"inner": "INNER", "left": "LEFT", "right": "RIGHT", "full": "FULL OUTER"}[how]
    return f"SELECT {', '.join(out)} FROM L AS l {kind} JOIN R AS r ON {cond}"


def check_join(duck, left: pa.Table, right: pa.Table, *, how, strategy, on=None, left_on=None, right_on=None,
               suffix="_right", left_parts=1, right_parts=1, check_types=True):
    def names(value):
        return [value] if isinstance(value, str) else list(value or [])
    lk, rk = names(on if on is not None else left_on), names(on if on is not None else right_on)
    kwargs = {} if how == "cross" else ({"on": on} if on is not None else {"left_on": left_on, "right_on": right_on})
    ds = blocks(left, left_parts).join(blocks(right, right_parts), how=how, suffix=suffix, strategy=strategy,
                                       **kwargs)
    actual = ds.to_arrow()
    if how == "cross":
        lk, rk = [], []
    expected = q(duck, join_sql(left.column_names, right.column_names, lk, rk, how, suffix), L=left, R=right)
    assert_same(actual, expected, check_types=check_types)
    return ds


def join_tables(n_left=60, n_right=45, seed=1):
    """Keys k1 (int64 left, int32 right) and k2 (string), with nulls and duplicates on both sides;
    `val` appears on both sides (the right copy gets the suffix)."""
    rng = np.random.default_rng(seed)

    def keys(n, width):
        k1 = pa.array(rng.integers(0, 6, n), width, mask=rng.random(n) < 0.15)
        k2 = pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, n)], pa.string(), mask=rng.random(n) < 0.1)
        return k1, k2
    k1, k2 = keys(n_left, pa.int64())
    left = pa.table({"id": pa.array(np.arange(n_left), pa.int64()), "k1": k1, "k2": k2,
                     "val": pa.array(rng.integers(-100, 100, n_left), pa.int64(), mask=rng.random(n_left) < 0.1),
                     "lname": pa.array([f"L{i}" for i in range(n_left)])})
    k1, k2 = keys(n_right, pa.int32())
    right = pa.table({"k2": k2, "rid": pa.array(np.arange(n_right) + 1000, pa.int64()), "k1": k1,
                      "val": pa.array(rng.normal(size=n_right).round(3), pa.float64()),
                      "w": pa.array([f"R{i}" for i in range(n_right)])})
    return left, right


# ---------------------------------------------------------------- joins: semantics per type and strategy


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("how", HOWS)
def test_join_multi_key_nulls_duplicates_widths(runner, duck, how, strategy):
    left, right = join_tables()
    engine(strategy)
    check_join(duck, left, right, how=how, strategy=strategy, on=["k1", "k2"], left_parts=3, right_parts=2)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("how", HOWS)
def test_join_different_key_names_custom_suffix(runner, duck, how, strategy):
    # the right side has a non-key column named like the left key: it gets the suffix too
    left, right = join_tables(seed=2)
    right = right.rename_columns(["k2", "rid", "rk", "val", "w"]).append_column(
        "k1", pa.array(np.arange(right.num_rows), pa.int64()))
    engine(strategy, broadcast_fraction=0.0 if strategy == "auto" else None)
    check_join(duck, left, right, how=how, strategy=strategy, left_on="k1", right_on="rk", suffix="_r",
               left_parts=2)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("empty", ["left", "right", "both"])
def test_join_empty_sides(runner, duck, empty, how, strategy):
    left, right = join_tables(seed=3)
    if empty in ("left", "both"):
        left = left.slice(0, 0)
    if empty in ("right", "both"):
        right = right.slice(0, 0)
    engine(strategy, adaptive=strategy != "auto")
    check_join(duck, left, right, how=how, strategy=strategy, on=["k1", "k2"])


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("how", ["inner", "left", "right", "full", "semi", "anti"])
def test_join_all_null_keys(runner, duck, how, strategy):
    left, right = join_tables(seed=4)
    left = left.set_column(1, "k1", pa.nulls(left.num_rows, pa.int64()))
    engine(strategy)
    check_join(duck, left, right, how=how, strategy=strategy, on="k1", left_parts=2)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("how", ["inner", "left", "full", "anti"])
def test_join_float_keys_nan_and_negative_zero(runner, duck, how, strategy):
    # DuckDB (like Postgres and Spark) treats NaN = NaN and -0.0 = 0.0 for joins; a join's result
    # must not depend on the strategy that runs it (joins.py)
    left = pa.table({"k": [0.0, float("nan"), 1.5, None, 2.5, 3.5], "a": [1, 2, 3, 4, 5, 6]})
    right = pa.table({"k": [-0.0, float("nan"), 1.5, None, 7.0], "b": [10, 20, 30, 40, 50]})
    engine(strategy, adaptive=False)
    check_join(duck, left, right, how=how, strategy=strategy, on="k")


KEY_TYPES = [(pa.int32(), pa.int64()), (pa.int64(), pa.int8()), (pa.uint8(), pa.int16()),
             (pa.uint32(), pa.int32()), (pa.float64(), pa.int32()), (pa.uint64(), pa.int64())]


@pytest.mark.parametrize("strategy", ["broadcast", "shuffle"])
@pytest.mark.parametrize("how", ["inner", "left"])
@pytest.mark.parametrize("types", KEY_TYPES, ids=lambda t: f"{t[0]}-{t[1]}")
def test_join_keys_of_different_numeric_types(runner, duck, types, how, strategy):
    # keys are compared as numbers, as in SQL, whatever their widths and signedness
    lt, rt = types
    big = [2**62 + 1] if pa.types.is_uint64(lt) else []
    lvalues = [0, 1, 2, 100, None, 1] + big + ([2**63 + 5] if big else []) + ([2.5] if lt == pa.float64() else [])
    rvalues = [1, 2, 3, 100, None] + big + ([] if pa.types.is_unsigned_integer(rt) else [-1])
    left = pa.table({"k": pa.array(lvalues, lt), "a": pa.array(range(len(lvalues)), pa.int64())})
    right = pa.table({"k": pa.array(rvalues, rt), "b": pa.array(range(len(rvalues)), pa.int64())})
    engine(strategy, adaptive=False)
    # uint64 against a signed key: sluice widens both to decimal(20,0), the one type that holds
    # both exactly, so the key column's type differs from DuckDB's while every value matches
    widened = pa.types.is_uint64(lt) and pa.types.is_signed_integer(rt)
    ds = check_join(duck, left, right, how=how, strategy=strategy, on="k", right_parts=2, check_types=not widened)
    if widened:
        assert ds.schema.field("k").type == pa.decimal128(20, 0)


def test_join_then_filter_on_each_side(runner, duck):
    # filters above a join are pushed into the side whose rows they judge, never into a preserved side
    left, right = join_tables(seed=5)
    for how in ("inner", "left", "right", "full"):
        ds = sl.from_arrow(left).join(sl.from_arrow(right), on="k1", how=how, strategy="shuffle")
        actual = ds.filter((col("val") > 0) & col("val_right").is_null()).to_arrow()
        base = join_sql(left.column_names, right.column_names, ["k1"], ["k1"], how, "_right")
        expected = q(duck, f"SELECT * FROM ({base}) WHERE val > 0 AND val_right IS NULL", L=left, R=right)
        assert_same(actual, expected)


# ---------------------------------------------------------------- joins: shuffle machinery at scale


def _large_join_tables(n_left=200_000, n_right=60_000, seed=9):
    rng = np.random.default_rng(seed)
    left = pa.table({"k": pa.array(rng.integers(0, 50_000, n_left), pa.int64(), mask=rng.random(n_left) < 0.01),
                     "a": pa.array(rng.integers(0, 1000, n_left), pa.int64())})
    right = pa.table({"k": pa.array(rng.integers(0, 80_000, n_right), pa.int32()),
                      "b": pa.array(rng.random(n_right), pa.float64())})
    return left, right


@pytest.mark.parametrize("how", ["inner", "left", "right", "full", "anti"])
def test_join_shuffle_many_partitions_coalesced(runner, duck, how):
    left, right = _large_join_tables()
    engine("auto", broadcast_fraction=0.0)
    ds = check_join(duck, left, right, how=how, strategy="auto", on="k", left_parts=4, right_parts=2)
    stats = ds.stats()
    assert any("coalesced" in note for note in stats.notes), stats.notes
    assert sum(len(tasks) for tasks in stats.reduce_tasks.values()) > 1
    assert stats.shuffle_bytes_written > 0


@pytest.mark.parametrize("how", ["inner", "left", "semi", "anti", "right"])
def test_join_skewed_key_is_split(runner, duck, how):
    # one key holds half the streamed side's rows: its partition is split, and the key reported
    rng = np.random.default_rng(12)
    n = 40_000
    keys = np.where(rng.random(n) < 0.5, 7, rng.integers(0, 5_000, n))
    streamed = pa.table({"k": pa.array(keys, pa.int64()), "v": pa.array(np.arange(n), pa.int64())})
    other = pa.table({"k": pa.array(np.arange(0, 5_000, 2), pa.int64()), "w": pa.array(np.arange(2_500), pa.int64())})
    left, right = (other, streamed) if how == "right" else (streamed, other)
    engine("shuffle", skew_factor=2.0, skew_min_bytes="1KiB", target_partition_bytes="16KiB")
    ds = check_join(duck, left, right, how=how, strategy="shuffle", on="k", left_parts=3, right_parts=3)
    stats = ds.stats()
    assert any("split skewed partition" in note for note in stats.notes), stats.notes
    assert any(entry["key"] == {"k": 7} for entry in stats.skewed_keys), stats.skewed_keys


def test_join_adaptive_switch_to_broadcast(runner, duck):
    # the right side is estimated large (the filter is not in the estimate) but measures small
    left, right = _large_join_tables(n_left=300_000, n_right=200_000)
    budget = sl.configure().memory_budget
    engine("auto", broadcast_fraction=(512 * 1024) / budget)
    ds = blocks(left, 2).join(sl.from_arrow(right).filter(col("k") < 100), on="k", how="inner")
    expected = q(duck, "SELECT l.k, l.a, r.b FROM L l JOIN R r ON l.k = r.k WHERE r.k < 100", L=left, R=right)
    assert_same(ds.to_arrow(), expected)
    assert any("switched from shuffle" in note for note in ds.stats().notes), ds.stats().notes


@pytest.mark.parametrize("how", ["inner", "full"])
def test_join_spills_under_a_small_budget(runner, duck, how):
    left, right = _large_join_tables(n_left=150_000, n_right=150_000)
    engine("shuffle", memory_budget="24MiB", adaptive=False)
    ds = check_join(duck, left, right, how=how, strategy="shuffle", on="k", left_parts=4, right_parts=4)
    if runner == "local":  # sluice's exchange buffers spill under its budget; on Ray the object store spills
        assert ds.stats().spilled_bytes > 0


# ---------------------------------------------------------------- aggregations


def agg_table(n=400, seed=21) -> pa.Table:
    """Groups g (string, with nulls) and g2; x is all-null in group 'zz'; rn is the input order."""
    rng = np.random.default_rng(seed)
    g = np.array(["a", "b", "c", "zz"])[rng.integers(0, 4, n)]
    x = rng.integers(-20, 20, n).astype(object)
    x[g == "zz"] = None
    x[rng.random(n) < 0.1] = None
    return pa.table({
        "rn": pa.array(np.arange(n), pa.int64()),
        "g": pa.array(g, pa.string(), mask=rng.random(n) < 0.08),
        "g2": pa.array(rng.integers(0, 3, n), pa.int32()),
        "x": pa.array(list(x), pa.int64()),
        "y": pa.array(rng.normal(10, 5, n).round(4), pa.float64(), mask=rng.random(n) < 0.2),
        "s": pa.array(np.array(["p", "q", "r", "t"])[rng.integers(0, 4, n)], pa.string(), mask=rng.random(n) < 0.1),
    })


def all_aggs():
    return {
        "n": sl.count(), "cx": col("x").count(), "sx": col("x").sum(), "sy": col("y").sum(), "mx": col("x").mean(),
        "lo": col("x").min(), "hi": col("y").max(), "smin": col("s").min(), "dx": col("x").count_distinct(),
        "ds": col("s").count_distinct(), "fx": col("x").first(), "lx": col("x").last(), "sdy": col("y").std(),
        "vx": col("x").var(), "medx": col("x").median(), "medy": col("y").median(),
        "q1": col("y").quantile(0.25), "q9": col("x").quantile(0.9), "lst": col("x").collect_list(),
    }


ALL_AGGS_SQL = ("count(*) AS n, count(x) AS cx, sum(x)::BIGINT AS sx, sum(y) AS sy, avg(x) AS mx, min(x) AS lo, "
                "max(y) AS hi, min(s) AS smin, count(DISTINCT x) AS dx, count(DISTINCT s) AS ds, "
                "first(x ORDER BY rn) AS fx, last(x ORDER BY rn) AS lx, stddev_samp(y) AS sdy, var_samp(x) AS vx, "
                "median(x) AS medx, median(y) AS medy, quantile_cont(y, 0.25) AS q1, quantile_cont(x, 0.9) AS q9, "
                "list_sort(list(x), 'ASC', 'NULLS LAST') AS lst")

DECOMPOSABLE = ("n", "cx", "sx", "sy", "mx", "lo", "hi", "smin", "fx", "lx", "sdy", "vx")


def sort_lists(duck, table: pa.Table, column: str = "lst") -> pa.Table:
    return q(duck, f"SELECT * REPLACE (list_sort({column}, 'ASC', 'NULLS LAST') AS {column}) FROM t", t=table)


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("keys", [("g",), ("g", "g2")])
def test_group_by_every_aggregate(runner, duck, keys, adaptive):
    table = agg_table()
    engine(adaptive=adaptive, target_partition_bytes="1KiB")
    actual = blocks(table, 4).group_by(*keys).agg(**all_aggs()).to_arrow()
    group = ", ".join(keys)
    expected = q(duck, f"SELECT {group}, {ALL_AGGS_SQL} FROM t GROUP BY {group}", t=table)
    assert_same(sort_lists(duck, actual), expected)


@pytest.mark.parametrize("adaptive", [False, True])
def test_group_by_two_phase_aggregates(runner, duck, adaptive):
    # no holistic aggregate: partials are merged after the exchange
    table = agg_table(n=3000, seed=22)
    engine(adaptive=adaptive, target_partition_bytes="1KiB")
    aggs = {k: v for k, v in all_aggs().items() if k in DECOMPOSABLE}
    actual = blocks(table, 6).group_by("g", "g2").agg(**aggs).to_arrow()
    sql = ", ".join(p for p in ALL_AGGS_SQL.split(", ") if p.rsplit(" AS ", 1)[-1] in DECOMPOSABLE)
    expected = q(duck, f"SELECT g, g2, {sql} FROM t GROUP BY g, g2", t=table)
    assert_same(actual, expected)


def test_global_aggregate_every_function(runner, duck):
    table = agg_table(seed=23)
    engine(target_partition_bytes="1KiB")
    actual = blocks(table, 3).agg(**all_aggs()).to_arrow()
    expected = q(duck, f"SELECT {ALL_AGGS_SQL} FROM t", t=table)
    assert_same(sort_lists(duck, actual), expected)


@pytest.mark.parametrize("holistic", [False, True])
def test_global_aggregate_over_empty_input_is_one_row(runner, duck, holistic):
    # like SQL: one row, counts 0, everything else null (collect_list gives an empty list)
    table = agg_table(seed=24)
    aggs = all_aggs() if holistic else {k: v for k, v in all_aggs().items() if k in DECOMPOSABLE}
    actual = blocks(table, 2).filter(col("rn") < 0).agg(**aggs).to_arrow()
    sql = ALL_AGGS_SQL if holistic else ", ".join(
        p for p in ALL_AGGS_SQL.split(", ") if p.rsplit(" AS ", 1)[-1] in DECOMPOSABLE)
    expected = q(duck, f"SELECT {sql} FROM t WHERE rn < 0", t=table)
    if holistic:
        # DuckDB's list() over no rows is NULL; sluice's collect_list is an empty list
        expected = expected.set_column(expected.column_names.index("lst"), "lst",
                                       pa.array([[]], expected.schema.field("lst").type))
    assert_same(actual, expected)
    assert actual.column("n").to_pylist() == [0] and actual.column("sx").to_pylist() == [None]


def test_group_by_over_empty_input_is_empty(runner, duck):
    table = agg_table(seed=25).slice(0, 0)
    actual = sl.from_arrow(table).group_by("g").agg(n=sl.count(), sx=col("x").sum()).to_arrow()
    assert_same(actual, q(duck, "SELECT g, count(*) AS n, sum(x)::BIGINT AS sx FROM t GROUP BY g", t=table))


def test_global_aggregate_over_all_null_column(runner, duck):
    table = agg_table(seed=26).filter(pa.compute.equal(pa.compute.fill_null(agg_table(seed=26)["g"], ""), "zz"))
    actual = blocks(table, 2).agg(**all_aggs()).to_arrow()
    expected = q(duck, f"SELECT {ALL_AGGS_SQL} FROM t", t=table)
    assert_same(sort_lists(duck, actual), expected)


def test_group_by_expression(runner, duck):
    table = agg_table(seed=27)
    ds = blocks(table, 2).group_by((col("x") * col("x")).alias("sq"), (col("y") > 10).alias("big"), "g")
    actual = ds.agg(n=sl.count(), sx=col("x").sum()).to_arrow()
    expected = q(duck, "SELECT x * x AS sq, y > 10 AS big, g, count(*) AS n, sum(x)::BIGINT AS sx FROM t "
                       "GROUP BY sq, big, g", t=table)
    assert_same(actual, expected)


def test_group_by_unaliased_expression_keeps_the_input_column(runner, duck):
    # the key column is named after the expression's column (`x`), but aggregates over `x` read
    # the input column, as in SQL and Polars: `SELECT x * x AS x, sum(x) ... GROUP BY x * x`
    table = agg_table(seed=28)
    actual = blocks(table, 2).group_by(col("x") * col("x")).agg(n=sl.count(), sx=col("x").sum()).to_arrow()
    expected = q(duck, "SELECT t.x * t.x AS x, count(*) AS n, sum(t.x)::BIGINT AS sx FROM t GROUP BY t.x * t.x",
                 t=table)
    assert_same(actual, expected)


def test_first_last_follow_input_order_at_scale(runner, duck):
    rng = np.random.default_rng(29)
    n = 200_000
    table = pa.table({"rn": pa.array(np.arange(n), pa.int64()), "g": pa.array(rng.integers(0, 2_000, n), pa.int64()),
                      "x": pa.array(rng.integers(0, 10**6, n), pa.int64(), mask=rng.random(n) < 0.2)})
    engine(target_partition_bytes="64KiB")
    ds = blocks(table, 5).group_by("g").agg(f=col("x").first(), l=col("x").last(), n=sl.count(),
                                           d=col("x").count_distinct(), m=col("x").median())
    actual = ds.to_arrow()
    expected = q(duck, "SELECT g, first(x ORDER BY rn) AS f, last(x ORDER BY rn) AS l, count(*) AS n, "
                       "count(DISTINCT x) AS d, median(x) AS m FROM t GROUP BY g", t=table)
    assert_same(actual, expected)
    assert any("coalesced" in note for note in ds.stats().notes), ds.stats().notes


def test_aggregate_wide_types(runner, duck):
    # decimals, zoned timestamps, dates, small and unsigned ints, float32, binary, large strings.
    # A float32 mean stays float32 in sluice (DuckDB averages in double): compared at float32 precision.
    table = wide_table()
    engine(target_partition_bytes="1KiB")
    ds = blocks(table, 3).group_by("flag").agg(
        sd=col("dec").sum(), mind=col("dec").min(), maxts=col("ts_tz").max(), mindt=col("dt").min(),
        s8=col("i8").sum(), mf=col("f32").mean(), mu=col("u64").max(), nb=col("bin").count(),
        ft=col("txt").first(), dd=col("dt").count_distinct(), lts=col("ts_ms").last())
    expected = q(duck, "SELECT flag, sum(dec) AS sd, min(dec) AS mind, max(ts_tz) AS maxts, min(dt) AS mindt, "
                       "sum(i8)::BIGINT AS s8, avg(f32) AS mf, max(u64) AS mu, count(bin) AS nb, "
                       "first(txt ORDER BY id) AS ft, count(DISTINCT dt) AS dd, last(ts_ms ORDER BY id) AS lts "
                       "FROM t GROUP BY flag", t=table)
    assert_same(ds.to_arrow(), expected, rel=1e-6)


@pytest.mark.parametrize("adaptive", [False, True])
def test_float_keys_group_and_distinct_nan_negative_zero(runner, duck, adaptive):
    # SQL groups all NaNs together and -0.0 with 0.0, however the rows are partitioned
    table = pa.table({"k": [0.0, -0.0, float("nan"), float("nan"), None, 1.0] * 50, "v": list(range(300))})
    engine(adaptive=adaptive, target_partition_bytes="1KiB")
    actual = blocks(table, 5).group_by("k").agg(n=sl.count(), s=col("v").sum()).to_arrow()
    assert_same(actual, q(duck, "SELECT k, count(*) AS n, sum(v)::BIGINT AS s FROM t GROUP BY k", t=table))
    assert_same(blocks(table, 5).select("k").distinct().to_arrow(), q(duck, "SELECT DISTINCT k FROM t", t=table))


def test_aggregate_spills_under_a_small_budget(runner, duck):
    rng = np.random.default_rng(30)
    n = 200_000
    table = pa.table({"rn": pa.array(np.arange(n), pa.int64()), "g": pa.array(rng.integers(0, 50_000, n), pa.int64()),
                      "x": pa.array(rng.integers(0, 1000, n), pa.int64(), mask=rng.random(n) < 0.1)})
    engine(memory_budget="24MiB", adaptive=True)
    ds = blocks(table, 8).group_by("g").agg(f=col("x").first(), l=col("x").last(), d=col("x").count_distinct(),
                                           q=col("x").quantile(0.3), s=col("x").sum())
    expected = q(duck, "SELECT g, first(x ORDER BY rn) AS f, last(x ORDER BY rn) AS l, count(DISTINCT x) AS d, "
                       "quantile_cont(x, 0.3) AS q, sum(x)::BIGINT AS s FROM t GROUP BY g", t=table)
    assert_same(ds.to_arrow(), expected)
    if runner == "local":  # sluice's exchange buffers spill under its budget; on Ray the object store spills
        assert ds.stats().spilled_bytes > 0


# ---------------------------------------------------------------- distinct


def distinct_table(n=500, seed=31) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "rn": pa.array(np.arange(n), pa.int64()),
        "a": pa.array(rng.integers(0, 5, n), pa.int64(), mask=rng.random(n) < 0.1),
        "b": pa.array(np.array(["u", "v", "w"])[rng.integers(0, 3, n)], pa.string(), mask=rng.random(n) < 0.1),
        "c": pa.array(rng.integers(0, 3, n), pa.int32()),
    })


@pytest.mark.parametrize("adaptive", [False, True])
def test_distinct_whole_rows(runner, duck, adaptive):
    table = distinct_table().drop_columns(["rn"])
    engine(adaptive=adaptive, target_partition_bytes="1KiB")
    assert_same(blocks(table, 4).distinct().to_arrow(), q(duck, "SELECT DISTINCT * FROM t", t=table))


@pytest.mark.parametrize("keep", ["first", "last"])
@pytest.mark.parametrize("subset", [("a",), ("a", "b")])
def test_distinct_subset_keep_first_last(runner, duck, subset, keep):
    # keep=first/last means by input order: DuckDB numbers the rows per subset by rn
    table = distinct_table(seed=32)
    engine(target_partition_bytes="1KiB")
    actual = blocks(table, 4).distinct(subset=list(subset), keep=keep).to_arrow()
    order = "rn" if keep == "first" else "rn DESC"
    expected = q(duck, f"SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY {', '.join(subset)} "
                       f"ORDER BY {order}) = 1", t=table)
    assert_same(actual, expected)


def test_distinct_subset_keep_any(runner, duck):
    # any row of each group may be kept: check one row per subset value, each an input row
    table = distinct_table(seed=33)
    engine(target_partition_bytes="1KiB")
    actual = blocks(table, 3).distinct(subset=["a", "b"]).to_arrow()
    assert_same(actual.select(["a", "b"]), q(duck, "SELECT DISTINCT a, b FROM t", t=table))
    inputs = set(map(tuple, zip(*(table[c].to_pylist() for c in table.column_names))))
    assert all(row in inputs for row in zip(*(actual[c].to_pylist() for c in table.column_names)))


def test_distinct_then_count_at_scale(runner, duck):
    rng = np.random.default_rng(34)
    n = 300_000
    table = pa.table({"a": pa.array(rng.integers(0, 30_000, n), pa.int64()),
                      "b": pa.array(rng.integers(0, 3, n), pa.int64(), mask=rng.random(n) < 0.05)})
    engine(target_partition_bytes="64KiB")
    ds = blocks(table, 4).distinct()
    assert_same(ds.to_arrow(), q(duck, "SELECT DISTINCT * FROM t", t=table))


# ---------------------------------------------------------------- sort and top-k


def sort_table(n, seed=41) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "rn": pa.array(np.arange(n), pa.int64()),
        "a": pa.array(rng.integers(0, 50, n), pa.int64(), mask=rng.random(n) < 0.05),
        "b": pa.array(np.array(["x", "y", "z", "Ä", ""])[rng.integers(0, 5, n)], pa.string(), mask=rng.random(n) < 0.05),
        "f": pa.array(rng.normal(size=n).round(2), pa.float64(), mask=rng.random(n) < 0.05),
    })


def _order_sql(by, descending, nulls_last) -> str:
    return ", ".join(f"{b} {'DESC' if d else 'ASC'} NULLS {'LAST' if n else 'FIRST'}"
                     for b, d, n in zip(by, descending, nulls_last))


FLAG_COMBOS = list(itertools.product([False, True], repeat=2))


@pytest.mark.parametrize("descending", FLAG_COMBOS)
@pytest.mark.parametrize("nulls_last", FLAG_COMBOS)
def test_sort_multi_key_flags_is_stable(runner, duck, descending, nulls_last):
    # ties keep input order (sluice's ordered-stream promise): DuckDB breaks ties by rn
    table = sort_table(3000)
    engine(target_partition_bytes="4KiB")
    ds = blocks(table, 4).sort(["a", "b"], descending=list(descending), nulls_last=list(nulls_last))
    actual = ds.to_arrow()
    order = _order_sql(["a", "b"], descending, nulls_last)
    assert_same(actual, q(duck, f"SELECT * FROM t ORDER BY {order}, rn", t=table), ordered=True)


def test_sort_many_range_partitions(runner, duck):
    table = sort_table(300_000, seed=42)
    engine(target_partition_bytes="64KiB")
    by, desc, nl = ["b", "a", "f", "rn"], [True, False, True, False], [True, False, False, True]
    ds = blocks(table, 6).sort(by, descending=desc, nulls_last=nl)
    actual = ds.to_arrow()
    assert_same(actual, q(duck, f"SELECT * FROM t ORDER BY {_order_sql(by, desc, nl)}", t=table), ordered=True)
    tasks = ds.stats().reduce_tasks
    assert max(len(t) for t in tasks.values()) >= 4, tasks


def test_sort_spills_under_a_small_budget(runner, duck):
    table = sort_table(400_000, seed=46)
    engine(memory_budget="24MiB")
    ds = blocks(table, 8).sort(["a", "f"], descending=[False, True], nulls_last=[True, True])
    expected = q(duck, "SELECT * FROM t ORDER BY a ASC NULLS LAST, f DESC NULLS LAST, rn", t=table)
    assert_same(ds.to_arrow(), expected, ordered=True)
    if runner == "local":  # sluice's exchange buffers spill under its budget; on Ray the object store spills
        assert ds.stats().spilled_bytes > 0


def test_sort_all_null_and_empty(runner, duck):
    table = sort_table(200, seed=43)
    table = table.set_column(1, "a", pa.nulls(table.num_rows, pa.int64()))
    for data in (table, table.slice(0, 0)):
        actual = blocks(data, 2).sort(["a", "rn"], descending=[True, True], nulls_last=[False, False]).to_arrow()
        assert_same(actual, q(duck, "SELECT * FROM t ORDER BY a DESC NULLS FIRST, rn DESC", t=data), ordered=True)


@pytest.mark.parametrize("n", [0, 1, 17, 5000])
def test_top_k_in_order(runner, duck, n):
    table = sort_table(4000, seed=44)
    engine(target_partition_bytes="4KiB")
    ds = blocks(table, 5).sort(["f", "a"], descending=[True, False], nulls_last=[True, False]).limit(n)
    assert "TopK" in ds.explain(show=False)
    expected = q(duck, f"SELECT * FROM t ORDER BY f DESC NULLS LAST, a ASC NULLS FIRST, rn LIMIT {n}", t=table)
    assert_same(ds.to_arrow(), expected, ordered=True)


def test_top_k_after_join_and_aggregate(runner, duck):
    left, right = join_tables(n_left=300, n_right=200, seed=45)
    engine(target_partition_bytes="1KiB")
    ds = (blocks(left, 3).join(sl.from_arrow(right), on="k1", strategy="shuffle")
          .group_by("k1").agg(n=sl.count(), t=col("val").sum())
          .sort(["n", "k1"], descending=[True, False]).limit(3))
    expected = q(duck, "SELECT l.k1, count(*) AS n, sum(l.val)::BIGINT AS t FROM L l JOIN R r ON l.k1 = r.k1 "
                       "GROUP BY l.k1 ORDER BY n DESC, k1 NULLS FIRST LIMIT 3", L=left, R=right)
    assert_same(ds.to_arrow(), expected, ordered=True)


# ---------------------------------------------------------------- repartition


@pytest.mark.parametrize("by", [None, ("a",), ("a", "b")])
@pytest.mark.parametrize("n", [1, 7])
def test_repartition_keeps_rows_and_colocates_keys(runner, duck, n, by):
    table = sort_table(5000, seed=51)
    engine()
    counter = itertools.count()

    def tag(batch: pa.Table) -> pa.Table:
        return batch.append_column("block", pa.array([next(counter)] * batch.num_rows, pa.int64()))

    ds = blocks(table, 3).repartition(n, by=list(by) if by else None)
    assert_same(ds.to_arrow(), table)
    tagged = ds.map_batches(tag).to_arrow()
    assert len(set(tagged["block"].to_pylist())) <= n
    if by:
        per_key = q(duck, f"SELECT {', '.join(by)}, count(DISTINCT block) AS blocks FROM t GROUP BY ALL", t=tagged)
        assert set(per_key["blocks"].to_pylist()) == {1}

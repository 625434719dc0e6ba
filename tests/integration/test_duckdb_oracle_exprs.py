"""DuckDB as the correctness oracle, part 2: expressions.

Every case computes columns over the same Parquet file (nulls in every column, negative
numbers, unicode strings) with sluice and with the equivalent DuckDB SQL, and compares.
Where the two engines define an operation differently, the DuckDB side spells out sluice's
semantics explicitly, and the comment says why:

- `//` and `%` floor (Python/Polars); DuckDB's `//` and `%` truncate toward zero.
- `cast` float -> int truncates (Polars); DuckDB's CAST rounds.
- `str.contains` is a regex search (DuckDB `regexp_matches`); `str.replace` replaces every
  occurrence (DuckDB `replace` / `regexp_replace(..., 'g')`); `str.slice` is 0-based
  (DuckDB `substr` is 1-based).
- `hash` is engine-specific: only determinism and consistency are tested.
"""

from __future__ import annotations

import datetime

import pyarrow as pa

import sluice as sl
from sluice import col, lit, when

from conftest import assert_same, q, sqlpath


def _compare(duck, path, exprs, sql_exprs, where_sluice=None, where_sql=None, **kwargs):
    ds = sl.read_parquet(str(path))
    if where_sluice is not None:
        ds = ds.filter(where_sluice)
    actual = ds.select("id", *exprs).to_arrow()
    sql = f"SELECT id, {', '.join(sql_exprs)} FROM read_parquet({sqlpath(path)})"
    if where_sql is not None:
        sql += f" WHERE {where_sql}"
    expected = q(duck, sql)
    assert actual.num_rows > 0
    assert_same(actual, expected, **kwargs)
    return actual


# ---------------------------------------------------------------- arithmetic


def test_arithmetic_with_nulls(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        (col("x") + col("z")).alias("add"), (col("x") - col("y")).alias("sub"), (col("x") * col("z")).alias("mul"),
        (col("x") / col("z")).alias("div"), (col("y") / col("z")).alias("fdiv"), (-col("x")).alias("neg"),
        (col("x") * 2.5 + 1).alias("mix"), (lit(2) * lit(3) + col("x")).alias("folded"),
        (10 - col("z")).alias("rsub"),
    ], ["x + z AS add", "x - y AS sub", "x * z AS mul", "x / z AS div", "y / z AS fdiv", "-x AS neg",
        "x * 2.5::DOUBLE + 1 AS mix", "2 * 3 + x AS folded", "10 - z AS rsub"])


def test_floor_division_and_modulo_on_non_negative_data(runner, duck, mixed):
    """On non-negative operands floor and truncation agree, so DuckDB's own // and % apply."""
    _, path = mixed
    _compare(duck, path, [(col("x") // col("z")).alias("q"), (col("x") % col("z")).alias("r"),
                          (col("x") % 7).alias("r7")],
             ["x // z AS q", "x % z AS r", "x % 7 AS r7"],
             where_sluice=(col("x") >= 0) & (col("z") > 0), where_sql="x >= 0 AND z > 0")


def test_floor_division_and_modulo_on_signed_data(runner, duck, mixed):
    """sluice floors (Python semantics); DuckDB truncates, so its side spells out floor()."""
    _, path = mixed
    _compare(duck, path, [(col("x") // col("z")).alias("q"), (col("x") % col("z")).alias("r"),
                          (col("y") // col("z")).alias("fq"), (col("y") % col("z")).alias("fr")],
             ["CAST(floor(x / z) AS BIGINT) AS q", "x - z * CAST(floor(x / z) AS BIGINT) AS r",
              "floor(y / z) AS fq", "y - z * floor(y / z) AS fr"], rel=1e-9, abs_=1e-6)


# ---------------------------------------------------------------- comparisons and logic


def test_comparisons_with_nulls(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        (col("x") > col("z")).alias("gt"), (col("x") == col("z")).alias("eq"), (col("x") != 3).alias("ne"),
        (col("y") <= 0).alias("le"), (col("s") == "fig").alias("s_eq"), (col("s") < "c").alias("s_lt"),
        (col("d") >= datetime.date(2024, 7, 1)).alias("d_ge"), (col("flag") == True).alias("f_eq"),  # noqa: E712
    ], ["x > z AS gt", "x = z AS eq", "x <> 3 AS ne", "y <= 0 AS le", "s = 'fig' AS s_eq", "s < 'c' AS s_lt",
        "d >= DATE '2024-07-01' AS d_ge", "flag = true AS f_eq"])


def test_three_valued_boolean_logic(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        ((col("x") > 0) & col("flag")).alias("and_"), ((col("x") > 0) | col("flag")).alias("or_"),
        (~col("flag")).alias("not_"), (~((col("x") > 0) & (col("y") > 0))).alias("nand"),
    ], ["(x > 0) AND flag AS and_", "(x > 0) OR flag AS or_", "NOT flag AS not_", "NOT ((x > 0) AND (y > 0)) AS nand"])


def test_filter_treats_null_predicate_as_false(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [col("x"), col("flag")], ["x", "flag"],
             where_sluice=~((col("x") > 0) & col("flag")), where_sql="NOT ((x > 0) AND flag)")


# ---------------------------------------------------------------- nulls, membership, ranges


def test_null_tests_and_fill_null(runner, duck, mixed):
    _, path = mixed
    fill_ts = datetime.datetime(2000, 1, 1, 12)
    _compare(duck, path, [
        col("x").is_null().alias("x_null"), col("s").is_not_null().alias("s_ok"),
        col("x").fill_null(-1).alias("x_f"), col("y").fill_null(0.5).alias("y_f"),
        col("s").fill_null("?").alias("s_f"), col("ts").fill_null(fill_ts).alias("ts_f"),
        col("flag").fill_null(False).alias("flag_f"), col("x").fill_null(col("z")).alias("x_z"),
    ], ["x IS NULL AS x_null", "s IS NOT NULL AS s_ok", "coalesce(x, -1) AS x_f", "coalesce(y, 0.5) AS y_f",
        "coalesce(s, '?') AS s_f", "coalesce(ts, TIMESTAMP '2000-01-01 12:00:00') AS ts_f",
        "coalesce(flag, false) AS flag_f", "coalesce(x, z) AS x_z"])


def test_is_in_and_not_is_in(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("x").is_in([1, 2, 3, -5]).alias("x_in"), col("s").is_in(["fig", "date", ""]).alias("s_in"),
        (~col("grp").is_in(["a"])).alias("g_out"),
    ], ["x IN (1, 2, 3, -5) AS x_in", "s IN ('fig', 'date', '') AS s_in", "NOT (grp IN ('a')) AS g_out"])


def test_between_is_inclusive(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("x").between(-3, 3).alias("xb"), col("y").between(-10.5, 20.0).alias("yb"),
        col("s").between("b", "d").alias("sb"),
        col("ts").between(datetime.datetime(2024, 3, 1), datetime.datetime(2024, 9, 1)).alias("tb"),
        col("x").between(col("z"), 10).alias("colb"),
    ], ["x BETWEEN -3 AND 3 AS xb", "y BETWEEN -10.5 AND 20.0 AS yb", "s BETWEEN 'b' AND 'd' AS sb",
        "ts BETWEEN TIMESTAMP '2024-03-01' AND TIMESTAMP '2024-09-01' AS tb", "x BETWEEN z AND 10 AS colb"])


# ---------------------------------------------------------------- cast, alias, when


def test_casts(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("x").cast("float64").alias("xf"), col("x").cast("string").alias("xs"),
        col("flag").cast("int64").alias("fi"), col("ts").cast("date").alias("td"),
        col("d").cast("timestamp[us]").alias("dt"), col("x").cast("int32").alias("x32"),
        col("x").cast("string").cast("int64").alias("round_trip"),
        # float -> int truncates in sluice (Polars); DuckDB's CAST rounds, so truncate explicitly
        col("y").cast("int64").alias("yi"),
    ], ["CAST(x AS DOUBLE) AS xf", "CAST(x AS VARCHAR) AS xs", "CAST(flag AS BIGINT) AS fi",
        "CAST(ts AS DATE) AS td", "CAST(d AS TIMESTAMP) AS dt", "CAST(x AS INTEGER) AS x32",
        "x AS round_trip", "CAST(trunc(y) AS BIGINT) AS yi"])


def test_alias_rename_and_literals(runner, duck, mixed):
    _, path = mixed
    actual = (sl.read_parquet(str(path)).select(col("id").alias("key"), col("s"), lit(5).alias("five"),
                                                lit("k").alias("kk"), lit(1.5).alias("f"))
              .rename({"s": "text"}).to_arrow())
    expected = q(duck, f"SELECT id AS key, s AS text, 5 AS five, 'k' AS kk, 1.5::DOUBLE AS f "
                       f"FROM read_parquet({sqlpath(path)})")
    assert_same(actual, expected)


def test_when_then_otherwise(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        when(col("x") > 20).then(lit("high")).when(col("x") < -20).then(lit("low")).otherwise(lit("mid")).alias("band"),
        when(col("flag")).then(col("y")).otherwise(-col("y")).alias("signed"),
        when(col("s").is_null()).then(0).otherwise(col("s").str.len()).alias("slen"),
        when(col("x") > 0).then(col("x")).otherwise(None).alias("pos"),
    ], ["CASE WHEN x > 20 THEN 'high' WHEN x < -20 THEN 'low' ELSE 'mid' END AS band",
        "CASE WHEN flag THEN y ELSE -y END AS signed",
        "CASE WHEN s IS NULL THEN 0 ELSE length(s) END AS slen",
        "CASE WHEN x > 0 THEN x ELSE NULL END AS pos"])


# ---------------------------------------------------------------- strings


def test_str_contains_regex_and_literal(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("s").str.contains("an+a").alias("re"), col("s").str.contains("^[a-c]").alias("anchored"),
        col("s").str.contains("e.", literal=True).alias("lit_dot"), col("s").str.contains(" ").alias("space"),
    ], ["regexp_matches(s, 'an+a') AS re", "regexp_matches(s, '^[a-c]') AS anchored",
        "contains(s, 'e.') AS lit_dot", "regexp_matches(s, ' ') AS space"])


def test_str_prefix_suffix_case_and_length(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("s").str.starts_with("b").alias("sw"), col("s").str.ends_with("e").alias("ew"),
        col("s").str.lower().alias("lo"), col("s").str.upper().alias("up"), col("s").str.len().alias("n"),
    ], ["starts_with(s, 'b') AS sw", "ends_with(s, 'e') AS ew", "lower(s) AS lo", "upper(s) AS up",
        "length(s) AS n"])


def test_str_slice_is_zero_based(runner, duck, mixed):
    """str.slice(offset, length) counts from 0 (negative: from the end); DuckDB substr from 1."""
    _, path = mixed
    _compare(duck, path, [
        col("s").str.slice(0, 3).alias("head"), col("s").str.slice(2).alias("rest"),
        col("s").str.slice(-3, 2).alias("tail"), col("s").str.slice(4, 100).alias("long"),
    ], ["substr(s, 1, 3) AS head", "substr(s, 3) AS rest", "substr(s, -3, 2) AS tail", "substr(s, 5, 100) AS long"])


def test_str_replace_all_occurrences(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("s").str.replace("a", "A").alias("lit"), col("s").str.replace("[aeiou]+", "_", literal=False).alias("re"),
        col("s").str.replace("pp", "").alias("gone"),
    ], ["replace(s, 'a', 'A') AS lit", "regexp_replace(s, '[aeiou]+', '_', 'g') AS re", "replace(s, 'pp', '') AS gone"])


# ---------------------------------------------------------------- temporal


def test_dt_parts_with_nulls(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("ts").dt.year().alias("y"), col("ts").dt.month().alias("m"), col("ts").dt.day().alias("dd"),
        col("ts").dt.hour().alias("h"), col("d").dt.year().alias("dy"), col("d").dt.month().alias("dm"),
        col("d").dt.day().alias("dday"),
    ], ["year(ts) AS y", "month(ts) AS m", "day(ts) AS dd", "hour(ts) AS h", "year(d) AS dy", "month(d) AS dm",
        "day(d) AS dday"])


def test_dt_truncate(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("ts").dt.truncate("1d").alias("day"), col("ts").dt.truncate("1h").alias("hour"),
        col("ts").dt.truncate("1mo").alias("month"), col("ts").dt.truncate("1y").alias("year"),
        col("ts").dt.truncate("1w").alias("week"),
    ], ["date_trunc('day', ts) AS day", "date_trunc('hour', ts) AS hour", "date_trunc('month', ts) AS month",
        "date_trunc('year', ts) AS year", "date_trunc('week', ts) AS week"])


def test_dt_parts_on_tz_aware_timestamps(runner, duck):
    """Fields of a zoned timestamp are read in its own zone (DuckDB: AT TIME ZONE)."""
    base = datetime.datetime(2024, 3, 9, 20, tzinfo=datetime.timezone.utc)
    values = [None if i % 11 == 5 else base + datetime.timedelta(hours=5 * i) for i in range(200)]
    table = pa.table({"id": range(200), "ts": pa.array(values, pa.timestamp("us", "America/New_York"))})
    actual = (sl.from_arrow(table).select("id", col("ts").dt.hour().alias("h"), col("ts").dt.day().alias("d"),
                                          col("ts").dt.year().alias("y")).to_arrow())
    expected = q(duck, "SELECT id, hour(ts AT TIME ZONE 'America/New_York') AS h, "
                       "day(ts AT TIME ZONE 'America/New_York') AS d, year(ts AT TIME ZONE 'America/New_York') AS y "
                       "FROM t", t=table)
    assert_same(actual, expected)


# ---------------------------------------------------------------- hash: determinism, not values


def test_hash_is_deterministic_and_consistent(runner, duck, mixed, small_files):
    _, path = mixed
    ds = sl.read_parquet(str(path)).select("s", "x", col("s").hash().alias("hs"), col("x").hash().alias("hx"))
    first, second = ds.to_arrow(), ds.to_arrow()
    assert first.equals(second)
    # equal values hash equally, and (for these few values) different values differently
    pairs = q(duck, "SELECT count(DISTINCT s) AS ds, count(DISTINCT (s, hs)) AS dp, count(DISTINCT hs) AS dh, "
                    "count(DISTINCT x) AS dx, count(DISTINCT (x, hx)) AS dxp FROM t WHERE s IS NOT NULL "
                    "AND x IS NOT NULL", t=first).to_pylist()[0]
    assert pairs["ds"] == pairs["dp"] == pairs["dh"] and pairs["dx"] == pairs["dxp"]
    # the same values from a different source and layout hash the same
    again = sl.from_arrow(first.select(["s", "x"]).slice(1000)).select(col("s").hash().alias("hs")).to_arrow()
    assert again.column("hs").to_pylist() == first.column("hs").to_pylist()[1000:]
    # 500 small files: the hash of a tag is one value however the files are grouped into tasks
    root, _ = small_files
    tagged = sl.read_parquet(str(root)).select("tag", col("tag").hash().alias("h")).to_arrow()
    counts = q(duck, "SELECT count(DISTINCT tag) AS t, count(DISTINCT (tag, h)) FILTER (tag IS NOT NULL) AS th, "
                     "count(DISTINCT h) FILTER (tag IS NULL) AS null_hashes FROM t", t=tagged).to_pylist()[0]
    assert counts == {"t": 3, "th": 3, "null_hashes": 1}


def test_division_by_zero(runner, duck):
    """`/` is IEEE (inf, nan) in both engines. Integer `//` and `%` by zero give null in sluice; DuckDB
    raises unless wrapped in TRY(), which gives null. Float `//` floors the IEEE quotient (floor(y / 0))."""
    table = pa.table({"id": [0, 1, 2, 3], "x": [5, -5, 0, None], "y": [5.0, -5.0, 0.0, None], "zero": [0, 0, 0, 0]})
    actual = sl.from_arrow(table).select(
        "id", (col("x") / col("zero")).alias("d"), (col("x") // col("zero")).alias("fd"),
        (col("x") % col("zero")).alias("m"), (col("y") / 0).alias("yd"), (col("y") // 0).alias("yfd"),
        (col("y") % 0).alias("ym")).to_arrow()
    expected = q(duck, "SELECT id, x / zero AS d, TRY(x // zero) AS fd, TRY(x % zero) AS m, y / 0 AS yd, "
                       "floor(y / 0) AS yfd, fmod(y, 0.0) AS ym FROM t", t=table)
    assert_same(actual, expected)

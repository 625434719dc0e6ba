"""DuckDB as the correctness oracle, part 3: the expression function library (sluice/expr/library.py).

One test per function family, over the shared `mixed` Parquet file (nulls in every column, negative
numbers, unicode) and over small tables of the edge cases (NaN, infinities, whitespace, empty lists,
time zones), with the equivalent DuckDB SQL. Where the two engines define a function differently, the
DuckDB side spells out sluice's semantics and the comment says why (the docstrings in library.py say
which engine sluice follows):

- `round` of a float scales, rounds and scales back (14.95 -> 15.0); DuckDB rounds the exact binary value
  (14.95 is 14.9499..., giving 14.9). On this data (3 decimals) sluice's result is the decimal rounding,
  so DuckDB's side rounds the data as DECIMAL.
- `log` is natural (DuckDB `ln`; DuckDB's `log` is base 10); `pow` is always a float.
- `sign` and `clip` keep NaN (DuckDB: sign(NaN) = 0, and least/greatest order NaN above every number).
- `str.pad_start/pad_end` keep a longer string whole (DuckDB lpad/rpad cut it); `str.extract` gives
  null when nothing matches (DuckDB regexp_extract gives '').
- `str.strip_chars()` strips all whitespace (DuckDB trim(s) strips spaces: the SQL names the characters).
- `floor`/`ceil` of an integer stay integers (DuckDB gives a double).
- `clip` of null is null, and a null bound leaves that side open (DuckDB least/greatest skip nulls).
- `list.join` of a list of only nulls is '' (as PostgreSQL's array_to_string; DuckDB gives null).
- `list.get` counts from 0 (DuckDB's list[i] from 1).
- `dt.epoch` is an integer, rounded down (DuckDB epoch() is a float).
"""

from __future__ import annotations

import datetime
import decimal
import math

import pyarrow as pa
import pytest

import sluice as sl
from sluice import coalesce, col, lit

from conftest import assert_same, q, sqlpath


def _compare(duck, path, exprs, sql_exprs, **kwargs):
    actual = sl.read_parquet(str(path)).select("id", *exprs).to_arrow()
    expected = q(duck, f"SELECT id, {', '.join(sql_exprs)} FROM read_parquet({sqlpath(path)})")
    assert actual.num_rows > 0
    assert_same(actual, expected, **kwargs)


def _compare_table(duck, table, exprs, sql_exprs, **kwargs):
    """The same over an in-memory table, and over none of its rows (an empty input keeps its column types)."""
    for rows in (table, table.slice(0, 0)):
        actual = sl.from_arrow(rows).select("id", *exprs).to_arrow()
        expected = q(duck, f"SELECT id, {', '.join(sql_exprs)} FROM t", t=rows)
        assert actual.num_rows == rows.num_rows
        assert_same(actual, expected, **kwargs)


SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, None, 2.5, -2.5, 0.5, 1e-9, 1e300, -7.25]


@pytest.fixture(scope="module")
def special():
    n = len(SPECIAL_FLOATS)
    cents = [None if i % 4 == 1 else decimal.Decimal(f"{(i - 6) * 37}.{i % 10}5") for i in range(n)]
    return pa.table({"id": range(n), "v": pa.array(SPECIAL_FLOATS, pa.float64()),
                     "i": pa.array([3, -3, 0, None, 7, -1, 2, None, 5, -9, 1, 4, 0], pa.int64()),
                     "dec": pa.array(cents, pa.decimal128(12, 2))})


# ---------------------------------------------------------------- math


def test_rounding_roots_logs_and_powers(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("y").floor().alias("fl"), col("y").ceil().alias("ce"), col("x").floor().alias("xfl"),
        col("y").sqrt().alias("sq"), col("x").cbrt().alias("cb"), (col("y") / 100).exp().alias("ex"),
        col("y").log().alias("ln"), col("y").log(2).alias("l2"), col("x").log10().alias("l10"),
        col("y").log1p().alias("l1p"), col("x").pow(2).alias("p2"), col("y").pow(col("z")).alias("pz"),
        col("x").abs().alias("ab"), col("y").round(1).alias("r1"), col("x").sign().alias("sx"),
        col("y").sign().alias("sy"), col("x").clip(-10, 10).alias("c"), col("y").clip(lower_bound=0).alias("c0"),
        col("x").clip(upper_bound=col("z")).alias("cz"),
    ], ["floor(y) AS fl", "ceil(y) AS ce", "CAST(floor(x) AS BIGINT) AS xfl", "sqrt(y) AS sq", "cbrt(x) AS cb",
        "exp(y / 100) AS ex",
        "ln(y) AS ln", "log2(y) AS l2", "log10(x) AS l10", "ln(1 + y) AS l1p", "pow(x, 2) AS p2", "pow(y, z) AS pz",
        "abs(x) AS ab", "CAST(round(CAST(y AS DECIMAL(18, 3)), 1) AS DOUBLE) AS r1", "sign(x) AS sx",
        "CAST(sign(y) AS DOUBLE) AS sy",
        # a null value stays null under clip; DuckDB's least/greatest skip nulls, a null bound included
        "CASE WHEN x IS NOT NULL THEN greatest(least(x, 10), -10) END AS c",
        "CASE WHEN y IS NOT NULL THEN greatest(y, 0) END AS c0", "CASE WHEN x IS NOT NULL THEN least(x, z) END AS cz"],
        rel=1e-9, abs_=1e-9)


def test_trigonometry(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("y").sin().alias("si"), col("y").cos().alias("co"), col("y").tan().alias("ta"),
        (col("y") / 200).arcsin().alias("asi"), (col("y") / 200).arccos().alias("aco"), col("y").arctan().alias("at"),
        col("x").cot().alias("ct"), col("y").degrees().alias("deg"), col("y").radians().alias("rad"),
        (col("y") / 100).sinh().alias("sh"), (col("y") / 100).cosh().alias("ch"), (col("y") / 100).tanh().alias("th"),
    ], ["sin(y) AS si", "cos(y) AS co", "tan(y) AS ta", "asin(y / 200) AS asi", "acos(y / 200) AS aco",
        "atan(y) AS at", "cot(x) AS ct", "degrees(y) AS deg", "radians(y) AS rad", "sinh(y / 100) AS sh",
        "cosh(y / 100) AS ch", "tanh(y / 100) AS th"], rel=1e-9, abs_=1e-9)


def test_math_on_nan_infinity_zero_and_null(runner, duck, special):
    _compare_table(duck, special, [
        col("v").floor().alias("fl"), col("v").ceil().alias("ce"), col("v").sqrt().alias("sq"),
        col("v").log().alias("ln"), col("v").log10().alias("l10"), col("v").exp().alias("ex"),
        col("v").abs().alias("ab"), col("v").round(0).alias("r0"), col("v").sign().alias("sg"),
        col("v").clip(-1, 1).alias("c"), col("v").pow(2).alias("p"), col("v").arcsin().alias("asi"),
        col("i").sqrt().alias("isq"), col("i").log().alias("iln"), col("i").sign().alias("isg"),
        col("i").clip(0.5, 2.5).alias("ic"), col("dec").clip(-1, 1).alias("dc"), col("dec").is_nan().alias("dn"),
        col("dec").fill_nan(0).alias("df"),
    ], ["floor(v) AS fl", "ceil(v) AS ce", "sqrt(v) AS sq", "ln(v) AS ln", "log10(v) AS l10", "exp(v) AS ex",
        "abs(v) AS ab", "round(v, 0) AS r0",
        # sign and clip keep NaN; DuckDB's sign(NaN) is 0 and its least/greatest put NaN above every number
        "CASE WHEN isnan(v) THEN v ELSE CAST(sign(v) AS DOUBLE) END AS sg",
        "CASE WHEN v IS NULL OR isnan(v) THEN v ELSE greatest(least(v, 1), -1) END AS c", "pow(v, 2) AS p",
        "asin(v) AS asi",
        "sqrt(i) AS isq", "ln(i) AS iln", "sign(i) AS isg",
        # the common type of value and bounds, as SQL: 0.5 is not cast into the integer column
        "CASE WHEN i IS NOT NULL THEN greatest(least(i, 2.5::DOUBLE), 0.5::DOUBLE) END AS ic",
        "CASE WHEN dec IS NOT NULL THEN greatest(least(dec, 1), -1) END AS dc", "isnan(CAST(dec AS DOUBLE)) AS dn",
        "dec AS df"])


# ---------------------------------------------------------------- NaN and null handling


def test_nan_tests_fill_nan_and_coalesce(runner, duck, special):
    _compare_table(duck, special, [
        col("v").is_nan().alias("nan"), col("v").is_not_nan().alias("notnan"), col("v").is_finite().alias("fin"),
        col("v").is_infinite().alias("inf"), col("i").is_nan().alias("inan"), col("v").fill_nan(0).alias("f0"),
        col("v").fill_nan(None).alias("fnull"), coalesce(col("v"), col("i"), -1).alias("co"),
        coalesce(col("i"), 0).alias("ci"), coalesce(col("v").fill_nan(None), col("i")).alias("cnan"),
    ], ["isnan(v) AS nan", "NOT isnan(v) AS notnan", "isfinite(v) AS fin", "isinf(v) AS inf",
        "isnan(CAST(i AS DOUBLE)) AS inan", "CASE WHEN isnan(v) THEN 0 ELSE v END AS f0",
        "CASE WHEN isnan(v) THEN NULL ELSE v END AS fnull", "coalesce(v, i, -1) AS co", "coalesce(i, 0) AS ci",
        "coalesce(CASE WHEN isnan(v) THEN NULL ELSE v END, i) AS cnan"])


def test_coalesce_over_columns_of_the_file(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        coalesce(col("x"), col("z"), 0).alias("n"), coalesce(col("s"), col("grp"), lit("?")).alias("t"),
        coalesce(col("ts"), col("d").cast("timestamp[us]")).alias("w"),
    ], ["coalesce(x, z, 0) AS n", "coalesce(s, grp, '?') AS t", "coalesce(ts, CAST(d AS TIMESTAMP)) AS w"])


# ---------------------------------------------------------------- strings


@pytest.fixture(scope="module")
def texts():
    values = ["  a b  ", "\tx\n", "xx--", None, "", "ÉCLAIR  ", "-7", "12", "apple pie", "crème brûlée",
              "ab-1 cd-22", "--", " "]
    return pa.table({"id": range(len(values)), "s": pa.array(values, pa.string())})


def test_strip_pad_and_slices(runner, duck, texts):
    ws = "' ' || chr(9) || chr(10)"
    _compare_table(duck, texts, [
        col("s").str.strip_chars().alias("st"), col("s").str.strip().alias("st2"),
        col("s").str.lstrip().alias("ls"), col("s").str.rstrip().alias("rs"),
        col("s").str.strip_chars("-x").alias("sc"), col("s").str.strip_chars_start("-").alias("scs"),
        col("s").str.strip_chars_end("- ").alias("sce"), col("s").str.strip_prefix("ap").alias("sp"),
        col("s").str.strip_suffix("pie").alias("ss"), col("s").str.pad_start(6, "*").alias("pl"),
        col("s").str.pad_end(6).alias("pr"), col("s").str.reverse().alias("rev"), col("s").str.head(3).alias("hd"),
        col("s").str.tail(2).alias("tl"), col("s").str.len_bytes().alias("nb"),
    ], [f"trim(s, {ws}) AS st", f"trim(s, {ws}) AS st2", f"ltrim(s, {ws}) AS ls", f"rtrim(s, {ws}) AS rs",
        "trim(s, '-x') AS sc", "ltrim(s, '-') AS scs", "rtrim(s, '- ') AS sce",
        "CASE WHEN starts_with(s, 'ap') THEN substr(s, 3) ELSE s END AS sp",
        "CASE WHEN ends_with(s, 'pie') THEN left(s, length(s) - 3) ELSE s END AS ss",
        # a string longer than the width is kept whole (DuckDB lpad/rpad would cut it)
        "CASE WHEN length(s) >= 6 THEN s ELSE lpad(s, 6, '*') END AS pl",
        "CASE WHEN length(s) >= 6 THEN s ELSE rpad(s, 6, ' ') END AS pr",
        "reverse(s) AS rev", "left(s, 3) AS hd", "right(s, 2) AS tl", "strlen(s) AS nb"])


def test_split_and_regex_functions(runner, duck, mixed):
    _, path = mixed
    word_pair = r"([a-z]+) ([a-z]+)"
    _compare(duck, path, [
        col("s").str.split(" ").alias("parts"), col("s").str.split("a").list.len().alias("n"),
        col("s").str.extract(word_pair, 2).alias("second"), col("s").str.extract(r"\d", 0).alias("digit"),
        col("s").str.extract_all("[aeiou]").alias("vowels"), col("s").str.count_matches("[aeiou]").alias("nv"),
        col("s").str.count_matches("p", literal=True).alias("np"),
        col("s").str.replace_all("an", "AN").alias("ra"),
    ], ["string_split(s, ' ') AS parts", "len(string_split(s, 'a')) AS n",
        # no match gives null (DuckDB regexp_extract gives '')
        f"CASE WHEN regexp_matches(s, '{word_pair}') THEN regexp_extract(s, '{word_pair}', 2) END AS second",
        r"CASE WHEN regexp_matches(s, '\d') THEN regexp_extract(s, '\d', 0) END AS digit",
        "regexp_extract_all(s, '[aeiou]') AS vowels", "len(regexp_extract_all(s, '[aeiou]')) AS nv",
        "len(s) - len(replace(s, 'p', '')) AS np", "replace(s, 'an', 'AN') AS ra"])


def test_parse_and_format_dates_and_times(runner, duck):
    dates = ["2024-03-05", "1999-12-31", None, "2024-02-29", "0001-01-01"]
    stamps = ["2024-03-05 13:45:10", "1999-12-31 23:59:59", None, "2024-11-03 01:30:00", "2024-03-10 12:00:00"]
    table = pa.table({"id": range(5), "d": pa.array(dates), "t": pa.array(stamps)})
    fmt = "%Y-%m-%d %H:%M:%S"
    _compare_table(duck, table, [
        col("d").str.to_date("%Y-%m-%d").alias("date"), col("t").str.to_datetime(fmt).alias("ts"),
        col("t").str.strptime("timestamp[us]", fmt).alias("ts2"),
        col("t").str.to_datetime(fmt, time_zone="Asia/Kolkata").alias("tz"),
        col("t").str.to_datetime(fmt).dt.strftime("%d/%m/%Y %H.%M").alias("back"),
        col("d").str.to_date("%Y-%m-%d").dt.to_string("%Y%m%d").alias("compact"),
    ], ["CAST(strptime(d, '%Y-%m-%d') AS DATE) AS date", f"strptime(t, '{fmt}') AS ts", f"strptime(t, '{fmt}') AS ts2",
        f"strptime(t, '{fmt}') AT TIME ZONE 'Asia/Kolkata' AS tz",
        f"strftime(strptime(t, '{fmt}'), '%d/%m/%Y %H.%M') AS back",
        "strftime(CAST(strptime(d, '%Y-%m-%d') AS DATE), '%Y%m%d') AS compact"])


def test_text_that_does_not_parse_is_null_when_not_strict_and_a_bad_record_when_strict(runner, duck, tmp_path):
    table = pa.table({"id": range(4), "d": ["2024-03-05", "2024-13-01", None, "yesterday"]})
    actual = sl.from_arrow(table).select("id", col("d").str.to_date("%Y-%m-%d", strict=False).alias("p")).to_arrow()
    assert_same(actual, q(duck, "SELECT id, CAST(try_strptime(d, '%Y-%m-%d') AS DATE) AS p FROM t", t=table))
    with pytest.raises(sl.SluiceError, match="2024-13-01|yesterday"):
        sl.from_arrow(table).select(col("d").str.to_date("%Y-%m-%d")).to_arrow()


# ---------------------------------------------------------------- temporal


def test_date_and_time_parts(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("ts").dt.weekday().alias("wd"), col("d").dt.weekday().alias("dwd"), col("ts").dt.week().alias("wk"),
        col("d").dt.iso_year().alias("iy"), col("ts").dt.quarter().alias("qt"),
        col("ts").dt.ordinal_day().alias("doy"), col("d").dt.day_of_year().alias("ddoy"),
        col("ts").dt.minute().alias("mi"), col("ts").dt.second().alias("se"),
        col("ts").dt.millisecond().alias("ms"), col("ts").dt.is_leap_year().alias("leap"),
        col("ts").dt.date().alias("date"), col("ts").dt.month_start().alias("m0"), col("d").dt.month_end().alias("m1"),
        col("ts").dt.epoch().alias("ep"), col("ts").dt.epoch("ms").alias("epms"), col("d").dt.epoch("d").alias("epd"),
    ], ["isodow(ts) AS wd", "isodow(d) AS dwd", "week(ts) AS wk", "isoyear(d) AS iy", "quarter(ts) AS qt",
        "dayofyear(ts) AS doy", "dayofyear(d) AS ddoy", "minute(ts) AS mi", "second(ts) AS se",
        "millisecond(ts) % 1000 AS ms",  # DuckDB's millisecond() counts the seconds' milliseconds too
        "(year(ts) % 4 = 0 AND year(ts) % 100 <> 0) OR year(ts) % 400 = 0 AS leap", "CAST(ts AS DATE) AS date",
        "ts - to_days(CAST(day(ts) - 1 AS INTEGER)) AS m0", "last_day(d) AS m1",
        "CAST(floor(epoch(ts)) AS BIGINT) AS ep", "epoch_ms(ts) AS epms",
        "CAST(floor(epoch(d) / 86400) AS BIGINT) AS epd"])


def test_epoch_before_1970_rounds_down(runner, duck):
    stamps = [datetime.datetime(1969, 12, 31, 23, 59, 59, 500000), datetime.datetime(1970, 1, 1), None,
              datetime.datetime(1900, 6, 1, 12, 0, 0, 1)]
    table = pa.table({"id": range(4), "ts": pa.array(stamps, pa.timestamp("us"))})
    _compare_table(duck, table, [col("ts").dt.epoch().alias("s"), col("ts").dt.epoch("ms").alias("ms"),
                                 col("ts").dt.epoch("us").alias("us")],
                   ["CAST(floor(epoch(ts)) AS BIGINT) AS s", "CAST(floor(epoch_us(ts) / 1000) AS BIGINT) AS ms",
                    "epoch_us(ts) AS us"])


def test_differences_of_timestamps_in_whole_units(runner, duck, mixed):
    """A duration's total_days/hours/... truncate toward zero, as SQL's epoch arithmetic with trunc()."""
    _, path = mixed
    start = datetime.datetime(2024, 6, 1, 12)
    _compare(duck, path, [
        (col("ts") - lit(start)).dt.total_days().alias("days"), (col("ts") - lit(start)).dt.total_hours().alias("h"),
        (col("ts") - col("ts").dt.truncate("1mo")).dt.total_minutes().alias("mi"),
        (col("ts") - lit(start)).dt.total_seconds().alias("s"),
        (col("ts") - lit(start)).dt.total_milliseconds().alias("ms"),
    ], ["CAST(trunc(epoch(ts - TIMESTAMP '2024-06-01 12:00:00') / 86400) AS BIGINT) AS days",
        "CAST(trunc(epoch(ts - TIMESTAMP '2024-06-01 12:00:00') / 3600) AS BIGINT) AS h",
        "CAST(trunc(epoch(ts - date_trunc('month', ts)) / 60) AS BIGINT) AS mi",
        "CAST(trunc(epoch(ts - TIMESTAMP '2024-06-01 12:00:00')) AS BIGINT) AS s",
        "CAST(trunc(epoch(ts - TIMESTAMP '2024-06-01 12:00:00') * 1000) AS BIGINT) AS ms"])


def test_time_zone_conversion_and_parts_in_the_zone(runner, duck):
    """Parts of a zoned timestamp are read in its zone; convert_time_zone keeps the instant; replace_time_zone
    reads wall-clock times in a zone (DuckDB: naive AT TIME ZONE zone). The data crosses both 2024 DST changes."""
    base = datetime.datetime(2024, 3, 9, 20, tzinfo=datetime.timezone.utc)
    values = [None if i % 11 == 5 else base + datetime.timedelta(hours=5 * i + i % 3) for i in range(300)]
    zoned = pa.array(values, pa.timestamp("us", "America/New_York"))
    naive = pa.array([None if v is None else v.replace(tzinfo=None) for v in values], pa.timestamp("us"))
    table = pa.table({"id": range(300), "ts": zoned, "wall": naive})
    tokyo = col("ts").dt.convert_time_zone("Asia/Tokyo")
    _compare_table(duck, table, [
        tokyo.alias("tokyo"), tokyo.dt.hour().alias("th"), tokyo.dt.weekday().alias("twd"),
        col("ts").dt.weekday().alias("wd"), col("ts").dt.date().alias("nyd"), col("ts").dt.minute().alias("mi"),
        tokyo.dt.strftime("%Y-%m-%d %H:%M").alias("txt"), col("ts").dt.epoch().alias("ep"),
        col("wall").dt.replace_time_zone("Asia/Kolkata").alias("kol"),
        col("ts").dt.replace_time_zone(None).alias("ny_wall"),
    ], ["ts AS tokyo", "hour(ts AT TIME ZONE 'Asia/Tokyo') AS th", "isodow(ts AT TIME ZONE 'Asia/Tokyo') AS twd",
        "isodow(ts AT TIME ZONE 'America/New_York') AS wd", "CAST(ts AT TIME ZONE 'America/New_York' AS DATE) AS nyd",
        "minute(ts AT TIME ZONE 'America/New_York') AS mi",
        "strftime(ts AT TIME ZONE 'Asia/Tokyo', '%Y-%m-%d %H:%M') AS txt", "CAST(floor(epoch(ts)) AS BIGINT) AS ep",
        "wall AT TIME ZONE 'Asia/Kolkata' AS kol", "ts AT TIME ZONE 'America/New_York' AS ny_wall"])


# ---------------------------------------------------------------- lists and structs


@pytest.fixture(scope="module")
def lists():
    numbers = [[1, 2, None], [], None, [None], [5, -3], [7], [0, 0, 0, 9]]
    words = [["a", None, "b"], [], None, [None], ["x"], ["é", "ü"], ["", ""]]
    return pa.table({"id": range(7), "l": pa.array(numbers, pa.list_(pa.int64())),
                     "f": pa.array([None if v is None else [None if x is None else x / 2 for x in v] for v in numbers],
                                   pa.list_(pa.float64())),
                     "w": pa.array(words, pa.list_(pa.string()))})


def test_list_functions_with_nulls_and_empty_lists(runner, duck, lists):
    _compare_table(duck, lists, [
        col("l").list.len().alias("n"), col("l").list.get(0).alias("g0"), col("l").list.get(-1).alias("gl"),
        col("l").list.get(2).alias("g2"), col("l").list.first().alias("fi"), col("l").list.last().alias("la"),
        col("l").list.contains(0).alias("has0"), col("w").list.contains("x").alias("hasx"),
        col("w").list.join("-").alias("j"), col("l").list.sum().alias("su"), col("f").list.sum().alias("fsu"),
        col("l").list.mean().alias("me"), col("l").list.min().alias("mn"), col("w").list.max().alias("mx"),
        col("w").list.len().alias("wn"),
    ], ["len(l) AS n", "l[1] AS g0", "l[-1] AS gl", "l[3] AS g2", "l[1] AS fi", "l[-1] AS la",
        "list_contains(l, 0) AS has0", "list_contains(w, 'x') AS hasx",
        "coalesce(array_to_string(w, '-'), CASE WHEN w IS NOT NULL THEN '' END) AS j",
        "CAST(list_sum(l) AS BIGINT) AS su", "list_sum(f) AS fsu", "list_avg(l) AS me", "list_min(l) AS mn",
        "list_max(w) AS mx",
        "len(w) AS wn"])


def test_struct_field(runner, duck):
    rows = [{"city": "Oslo", "zip": 150}, None, {"city": None, "zip": 9}, {"city": "Åre", "zip": None}]
    table = pa.table({"id": range(4), "addr": pa.array(rows, pa.struct([("city", pa.string()), ("zip", pa.int64())]))})
    _compare_table(duck, table, [col("addr").struct.field("city"), col("addr").struct.field("zip").alias("z"),
                                 col("addr").struct.field("city").str.upper().alias("up")],
                   ["addr.city AS city", "addr.zip AS z", "upper(addr.city) AS up"])


def test_more_list_functions_follow_sql_on_nulls_and_empty_lists(runner, duck, lists):
    flags = pa.array([[True, None], [], None, [None], [False, True], [True], [False, False]], pa.list_(pa.bool_()))
    table = lists.append_column("b", flags)
    _compare_table(duck, table, [
        col("l").list.median().alias("med"), col("f").list.std().alias("sd"), col("l").list.var().alias("va"),
        col("b").list.any().alias("an"), col("b").list.all().alias("al"), col("l").list.sort().alias("so"),
        col("l").list.sort(descending=True).alias("sd_"), col("w").list.sort().alias("ws"),
        col("l").list.reverse().alias("re"), col("l").list.drop_nulls().alias("dn"), col("l").list.head(2).alias("hd"),
        col("l").list.tail(2).alias("tl"), col("l").list.slice(1, 2).alias("sl"),
        col("l").list.sort().list.first().alias("least"),
    ], ["list_median(l) AS med", "list_stddev_samp(f) AS sd", "list_var_samp(l) AS va", "list_bool_or(b) AS an",
        "list_bool_and(b) AS al", "list_sort(l) AS so", "list_reverse_sort(l) AS sd_", "list_sort(w) AS ws",
        "list_reverse(l) AS re", "list_filter(l, lambda x: x IS NOT NULL) AS dn", "l[1:2] AS hd",
        "l[greatest(len(l) - 1, 1):] AS tl", "l[2:3] AS sl", "list_sort(l)[1] AS least"])


def test_null_safe_equality_and_xor(runner, duck, mixed):
    _, path = mixed
    _compare(duck, path, [
        col("x").eq_missing(col("z")).alias("eq"), col("s").ne_missing(lit("fig")).alias("ne"),
        col("x").eq_missing(None).alias("isnull"), col("flag").xor(col("x") > 0).alias("xo"),
    ], ["x IS NOT DISTINCT FROM z AS eq", "s IS DISTINCT FROM 'fig' AS ne", "x IS NOT DISTINCT FROM NULL AS isnull",
        "(flag AND NOT (x > 0)) OR (NOT flag AND (x > 0)) AS xo"])


def test_calendar_facts_and_time_of_day(runner, duck, mixed):
    _, path = mixed
    start = datetime.datetime(2024, 6, 1, 12)
    _compare(duck, path, [
        col("ts").dt.days_in_month().alias("dim"), col("d").dt.century().alias("c"),
        col("d").dt.millennium().alias("mil"), col("ts").dt.nanosecond().alias("ns"),
        (col("ts") - lit(start)).dt.total_microseconds().alias("us"),
        (col("ts") - lit(start)).dt.total_nanoseconds().alias("nsd"),
    ], ["day(last_day(ts)) AS dim", "century(d) AS c", "millennium(d) AS mil",
        "nanosecond(ts) % 1000000000 AS ns", "epoch_us(ts) - epoch_us(TIMESTAMP '2024-06-01 12:00:00') AS us",
        "(epoch_us(ts) - epoch_us(TIMESTAMP '2024-06-01 12:00:00')) * 1000 AS nsd"])
    # a time of day is time64[ns] in sluice (Polars' one time type), time64[us] in DuckDB: values compared
    _compare(duck, path, [col("ts").dt.time().alias("tod")], ["CAST(ts AS TIME) AS tod"], check_types=False)


def test_find_contains_any_and_replace(runner, duck, mixed):
    """str.find counts characters from 0 and gives null when absent (DuckDB strpos counts from 1, 0 when absent)."""
    _, path = mixed
    _compare(duck, path, [
        col("s").str.find("e", literal=True).alias("fe"), col("s").str.find("[bB]").alias("fb"),
        col("s").str.find("û", literal=True).alias("fu"), col("s").str.contains_any(["an", "pie"]).alias("ca"),
        col("grp").replace({"a": "A", "b": "B"}).alias("rg"), col("x").replace([1, 2, 3], [-1, -2, -3]).alias("rx"),
        col("x").replace(0, 100).alias("r0"), col("x").replace(1, 0.5).alias("rf"),
    ], ["CASE WHEN strpos(s, 'e') > 0 THEN strpos(s, 'e') - 1 END AS fe",
        "CASE WHEN regexp_matches(s, '[bB]') THEN length(regexp_extract(s, '^(.*?)[bB]', 1)) END AS fb",
        "CASE WHEN strpos(s, 'û') > 0 THEN strpos(s, 'û') - 1 END AS fu",
        "contains(s, 'an') OR contains(s, 'pie') AS ca",
        "CASE grp WHEN 'a' THEN 'A' WHEN 'b' THEN 'B' ELSE grp END AS rg",
        "CASE x WHEN 1 THEN -1 WHEN 2 THEN -2 WHEN 3 THEN -3 ELSE x END AS rx",
        "CASE x WHEN 0 THEN 100 ELSE x END AS r0",
        "CASE x WHEN 1 THEN 0.5::DOUBLE ELSE x END AS rf"])  # the common type, as CASE: not 0.5 cast into an int


def test_unique_n_unique_and_count_matches_of_lists(runner, duck, lists):
    _compare_table(duck, lists, [
        col("l").list.unique().list.sort().alias("u"), col("l").list.n_unique().alias("nu"),
        col("w").list.n_unique().alias("wnu"), col("l").list.count_matches(0).alias("c0"),
        col("w").list.count_matches("").alias("ce"),
    ], [  # a null element is kept once (DuckDB's list_distinct drops it)
        "CASE WHEN l IS NOT NULL THEN list_sort(list_concat(list_distinct(l), "
        "CASE WHEN list_position(l, NULL) IS NOT NULL THEN [NULL] ELSE [] END)) END AS u",
        "list_unique(l) AS nu", "list_unique(w) AS wnu", "len(list_filter(l, lambda v: v = 0)) AS c0",
        "len(list_filter(w, lambda v: v = '')) AS ce"])

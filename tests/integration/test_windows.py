"""Window functions against DuckDB's window SQL, and their plan-time errors.

Data has several partitions (one of them hot), ties in the order column, nulls in values
and a null partition key, and is read from Parquet files as several blocks, so the exchange
that gathers each partition really runs. Order columns are unique within a partition where
a function's result depends on the order of tied rows (row_number, lag, cumulative and
row-count windows); rank and time spans are defined over ties and are tested with ties.
"""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_same, q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sluice as sl
from sluice import col

START = datetime.datetime(2026, 1, 1)


def events(n: int = 3000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    user = rng.choice([1, 2, 3, 4, 5, 6, 7], size=n, p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05])
    seq = np.arange(n)  # unique: a total order for order-dependent functions
    minutes = rng.integers(0, 60 * 24 * 30, size=n)
    amount = rng.normal(100, 30, size=n).round(2)
    amount_mask = rng.random(n) < 0.1
    user_mask = rng.random(n) < 0.02
    return pa.table({
        "user": pa.array(user, pa.int64(), mask=user_mask),
        "seq": pa.array(rng.permutation(seq), pa.int64()),
        "ts": pa.array([START + datetime.timedelta(minutes=int(m)) for m in minutes], pa.timestamp("us")),
        "day": pa.array([(START + datetime.timedelta(minutes=int(m))).date() for m in minutes], pa.date32()),
        "amount": pa.array(amount, pa.float64(), mask=amount_mask),
        "score": pa.array(rng.integers(0, 20, size=n), pa.int64()),  # many ties
    })


@pytest.fixture(scope="module")
def event_files(tmp_path_factory):
    table = events()
    directory = tmp_path_factory.mktemp("events")
    for i in range(4):
        pq.write_table(table.slice(i * 750, 750), directory / f"part-{i}.parquet")
    return directory, table


@pytest.fixture(autouse=True)
def small_partitions(runner):
    sl.configure(target_partition_bytes="16KiB")


CASES = {
    "row_number": (sl.row_number().over("user", order_by="seq"),
                   "row_number() OVER (PARTITION BY user ORDER BY seq)"),
    "row_number_desc": (sl.row_number().over("user", order_by="seq", descending=True),
                        "row_number() OVER (PARTITION BY user ORDER BY seq DESC)"),
    "rank_ties": (sl.rank().over("user", order_by="score"),
                  "rank() OVER (PARTITION BY user ORDER BY score)"),
    "dense_rank_two_keys": (sl.dense_rank().over("user", order_by=["score", "day"], descending=[True, False]),
                            "dense_rank() OVER (PARTITION BY user ORDER BY score DESC, day)"),
    "lag": (col("amount").lag(1).over("user", order_by="seq"),
            "lag(amount, 1) OVER (PARTITION BY user ORDER BY seq)"),
    "lag_default": (col("score").lag(3, default=-1).over("user", order_by="seq"),
                    "lag(score, 3, -1) OVER (PARTITION BY user ORDER BY seq)"),
    "lead": (col("amount").lead(2).over("user", order_by="seq"),
             "lead(amount, 2) OVER (PARTITION BY user ORDER BY seq)"),
    "cum_sum": (col("amount").cum_sum().over("user", order_by="seq"),
                "sum(amount) OVER (PARTITION BY user ORDER BY seq ROWS UNBOUNDED PRECEDING)"),
    "cum_max": (col("amount").cum_max().over("user", order_by="seq"),
                "max(amount) OVER (PARTITION BY user ORDER BY seq ROWS UNBOUNDED PRECEDING)"),
    "cum_count": (col("amount").cum_count().over("user", order_by="seq"),
                  "count(amount) OVER (PARTITION BY user ORDER BY seq ROWS UNBOUNDED PRECEDING)"),
    "rolling_rows_sum": (col("amount").rolling_sum(5).over("user", order_by="seq"),
                         "sum(amount) OVER (PARTITION BY user ORDER BY seq ROWS 4 PRECEDING)"),
    "rolling_rows_mean": (col("amount").rolling_mean(3).over("user", order_by="seq"),
                          "avg(amount) OVER (PARTITION BY user ORDER BY seq ROWS 2 PRECEDING)"),
    "rolling_rows_min": (col("score").rolling_min(4).over("user", order_by="seq"),
                         "min(score) OVER (PARTITION BY user ORDER BY seq ROWS 3 PRECEDING)"),
    "rolling_time_both": (col("amount").rolling_sum("1d", closed="both").over("user", order_by="ts"),
                          "sum(amount) OVER (PARTITION BY user ORDER BY ts "
                          "RANGE BETWEEN INTERVAL 1 DAY PRECEDING AND CURRENT ROW)"),
    "rolling_time_count": (col("amount").rolling_count("7d", closed="both").over("user", order_by="day"),
                           "count(amount) OVER (PARTITION BY user ORDER BY day "
                           "RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW)"),
    "rolling_time_right_dates": (col("score").rolling_max("7d").over("user", order_by="day"),
                                 # (t - 7 days, t] on whole days is [t - 6 days, t]
                                 "max(score) OVER (PARTITION BY user ORDER BY day "
                                 "RANGE BETWEEN INTERVAL 6 DAY PRECEDING AND CURRENT ROW)"),
    "partition_sum": (col("amount").sum().over("user"), "sum(amount) OVER (PARTITION BY user)"),
    "partition_count_all": (sl.count().over("user"), "count(*) OVER (PARTITION BY user)"),
    "global_row_number": (sl.row_number().over(order_by="seq"), "row_number() OVER (ORDER BY seq)"),
    "two_partition_keys": (col("amount").cum_sum().over(["user", "score"], order_by="seq"),
                           "sum(amount) OVER (PARTITION BY user, score ORDER BY seq ROWS UNBOUNDED PRECEDING)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_window_function_matches_duckdb(case, event_files, duck):
    directory, table = event_files
    expr, sql = CASES[case]
    got = sl.read_parquet(directory).with_columns(w=expr).to_arrow()
    expected = q(duck, f"SELECT *, {sql} AS w FROM t", t=table)
    if case in ("cum_count", "rolling_time_count", "partition_count_all"):
        expected = expected.set_column(expected.num_columns - 1, "w", expected["w"].cast(pa.int64()))
    assert_same(got, expected)


def test_several_windows_in_one_projection_and_arithmetic(event_files, duck):
    directory, table = event_files
    got = (sl.read_parquet(directory)
           .select("user", "seq", "amount",
                   change=col("amount") - col("amount").lag(1).over("user", order_by="seq"),
                   share=col("amount") / col("amount").sum().over("user"),
                   n=sl.row_number().over("user", order_by="seq", descending=True))
           .to_arrow())
    expected = q(duck, """
        SELECT user, seq, amount,
               amount - lag(amount) OVER (PARTITION BY user ORDER BY seq) AS change,
               amount / sum(amount) OVER (PARTITION BY user) AS share,
               row_number() OVER (PARTITION BY user ORDER BY seq DESC) AS n
        FROM t""", t=table)
    assert_same(got, expected)


def test_a_bare_aggregation_in_a_row_context_is_over_every_row(event_files, duck, staged):
    """As in Polars (and DuckDB's OVER ()): not one value per block. Four files, staged: four blocks."""
    directory, table = event_files
    events = sl.read_parquet(directory)
    got = events.with_columns(share=col("amount") / col("amount").sum(), top=col("score").max()).to_arrow()
    expected = q(duck, "SELECT *, amount / sum(amount) OVER () AS share, max(score) OVER () AS top FROM t", t=table)
    assert_same(got.select(expected.column_names), expected)
    above = events.filter(col("score") > col("score").mean()).select("seq").to_arrow()
    assert_same(above, q(duck, "SELECT seq FROM t WHERE score > (SELECT avg(score) FROM t)", t=table))
    only_aggregations = events.select(col("seq").count().alias("n"), col("amount").sum()).to_arrow()
    assert_same(only_aggregations, q(duck, "SELECT count(seq) AS n, sum(amount) AS amount FROM t", t=table))


def test_top_n_per_partition_through_filter(event_files, duck):
    directory, table = event_files
    got = (sl.read_parquet(directory)
           .filter(sl.row_number().over("user", order_by="amount", descending=True) <= 3)
           .filter(col("user") > 2)  # pushed below the window: it drops whole partitions
           .to_arrow())
    expected = q(duck, """
        SELECT user, seq, ts, day, amount, score FROM (
          SELECT *, row_number() OVER (PARTITION BY user ORDER BY amount DESC NULLS LAST, seq) AS rn FROM t)
        WHERE rn <= 3 AND user > 2""", t=table)
    # ties on amount are broken arbitrarily; amounts are unique apart from nulls, which sort last
    assert_same(got.select(["user", "amount"]), expected.select(["user", "amount"]))
    assert got.column_names == table.column_names


def test_unaliased_window_keeps_the_source_column_name_and_stacked_windows_share_an_exchange(event_files, staged):
    directory, _ = event_files
    ds = sl.read_parquet(directory).select(
        "user", col("amount").lag(1).over("user", order_by="seq"),
        total=col("score").sum().over("user"))
    assert ds.schema.names == ["user", "amount", "total"]
    physical = ds.explain(show=False)
    assert physical.count("exchange:") == 1, physical  # two window specs, one partitioning
    assert "window partition_by=[user] order_by=[seq]; then partition_by=[user] order_by=[]" in physical


def test_unused_window_columns_are_pruned(event_files):
    directory, _ = event_files
    ds = sl.read_parquet(directory).with_columns(rn=sl.row_number().over("user", order_by="seq")).select("score")
    assert "Window" not in ds.explain(show=False).split("== Optimized plan ==")[1]
    assert ds.count() == 3000


@pytest.mark.parametrize("bad, message", [
    (lambda: sl.row_number().over("user"), "depends on row order"),
    (lambda: col("amount").sum().over("user", order_by="seq"), "covers the whole partition"),
    (lambda: col("amount").rolling_sum("7d").over("user", order_by="seq"), "date or timestamp order_by"),
    (lambda: col("amount").lag(1), "needs .over"),
    (lambda: (col("amount") + 1).over("user"), "over() applies to a window function"),
    (lambda: col("amont").cum_sum().over("user", order_by="seq"), "amont"),
    (lambda: col("amount").cum_sum().over("usr", order_by="seq"), "usr"),
    (lambda: col("ts").cum_sum().over("user", order_by="seq"), "needs a number"),
    (lambda: col("amount").cum_sum().cum_max().over("user", order_by="seq"), "cannot be nested"),
])
def test_window_misuse_is_a_plan_time_error(bad, message, event_files):
    directory, _ = event_files
    with pytest.raises(sl.SluiceError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        sl.read_parquet(directory).with_columns(w=bad())


@pytest.mark.parametrize("bad, message", [
    (lambda: col("x").rolling_sum(0), "at least 1 row"),
    (lambda: col("x").rolling_sum("7 days"), "unknown time span"),
    (lambda: col("x").rolling_sum("7d", closed="open"), "closed="),
    (lambda: col("x").lag(-1), "non-negative"),
    (lambda: sl.row_number().over("k", order_by=["a", "b"], descending=[True]), "2 order_by columns"),
])
def test_window_arguments_are_checked_when_built(bad, message):
    with pytest.raises(sl.SluiceError, match=message):
        bad()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=0, max_size=60),
       hot=st.booleans(), parts=st.integers(1, 4), data=st.data())
def test_window_property_random_keys_equal_duckdb(keys, hot, parts, data, duck):
    n = len(keys)
    if hot:
        keys = [0 if i % 2 else k for i, k in enumerate(keys)]  # one key holds half the rows
    values = data.draw(st.lists(st.one_of(st.none(), st.integers(-50, 50)), min_size=n, max_size=n))
    table = pa.table({"k": pa.array(keys, pa.int64()), "o": pa.array(np.random.default_rng(n).permutation(n),
                                                                        pa.int64()),
                      "v": pa.array(values, pa.int64())})
    size = max(1, -(-n // parts))
    pieces = [sl.from_arrow(table.slice(i, size)) for i in range(0, max(n, 1), size)] or [sl.from_arrow(table)]
    ds = pieces[0].union(*pieces[1:]) if len(pieces) > 1 else pieces[0]
    got = ds.with_columns(rn=sl.row_number().over("k", order_by="o"),
                          prev=col("v").lag(1).over("k", order_by="o"),
                          run=col("v").cum_sum().over("k", order_by="o"),
                          roll=col("v").rolling_max(3).over("k", order_by="o"),
                          total=col("v").sum().over("k")).to_arrow()
    expected = q(duck, """
        SELECT *, row_number() OVER w AS rn, lag(v) OVER w AS prev,
               CAST(sum(v) OVER (w ROWS UNBOUNDED PRECEDING) AS BIGINT) AS run,
               max(v) OVER (w ROWS 2 PRECEDING) AS roll,
               CAST(sum(v) OVER (PARTITION BY k) AS BIGINT) AS total
        FROM t WINDOW w AS (PARTITION BY k ORDER BY o)""", t=table)
    assert_same(got, expected)

"""The ``seeds`` suite: the pipeline shapes sluice was built for, on generated data.

Data (``bench/data/seeds/``, generated once by ``bench.data.ensure_seeds`` with numpy
from the fixed seed in ``DATA``; regenerated when ``DATA`` changes):

- ``events`` (10M rows, 8 files): event_id, user_id (100k users), item_id (2M items),
  day (int 0..27), amount (float, 2 decimals).  1M rows are exact copies of other rows.
- ``users`` (100k rows): user_id, country (30 values), segment (0..4): a small,
  broadcastable dimension.
- ``items`` (2M rows, 8 files): item_id, category (50 values), price: a dimension sluice
  is told to shuffle rather than broadcast.
- ``skew_fact`` (20M rows, 8 files: k, amount; 30% of the rows have k = 7) and
  ``skew_dim`` (1M rows: k, weight).

Workloads, in DuckDB's SQL (``SQL`` below; DuckDB is the reference, the other engines
write the same thing in their own API).  ``{out}`` is a fresh temporary directory:

- (a) ``join_broadcast_write``: events x users (small) -> group by (country, day) ->
  write Parquet; the answer is read back from the written files.
- (b) ``join_shuffle_write``: events x items (2M rows; sluice: ``strategy="shuffle"``)
  -> group by (category, day) -> write Parquet, read back.
- (c) ``dedup_event_id``: global distinct on event_id; count and sums.
- (d) ``skew_join``: skew_fact x skew_dim on k (sluice: ``strategy="shuffle"``); run
  as ``sluice`` (adaptive execution on, the default) and ``sluice-noadaptive``
  (``sluice.configure(adaptive=False)``); sluice also records the rows read by the
  slowest and the median reduce task of the join (``stats().reduce_tasks``) and the hot
  keys it reported (``stats().skewed_keys``).
- (e) ``daily_features``: per (user, day) event counts and spend; windowed counts per
  user (tumbling 7-day window: ``day // 7``) and per user overall; a lookup join to
  users; vectorised transforms (ratios, a CASE flag, a product with a looked-up column);
  reduced to sums.  Engines with window expressions use them (sluice, Polars and Daft
  ``.sum().over(...)``, SQL ``OVER`` in DuckDB and Spark); Dask and Ray Data have none
  and compute the per-window totals as group-bys merged back.
- (f) ``sort_checksum``: sort events by (user_id, day, event_id) and reduce the sorted
  order to a position-weighted checksum sum(i * (event_id % 1009)), i = 0-based row
  position; duplicates are identical rows, so the checksum is unique.

Answers are small dicts of counts and sums, compared key by key (floats to 1e-6
relative: engines sum in different orders).  Stdlib-only.
"""
from bench.suites import tpch

# the default set; pyspark, daft, dask and ray-data implement every workload too (--engines)
ENGINES = ("sluice", "sluice-noadaptive", "duckdb", "polars")
REFERENCE = "duckdb"
TABLES = ("events", "users", "items", "skew_fact", "skew_dim")
PROCESS_PER = "workload"
# The adaptive-off variant is there for the skew comparison; elsewhere it would only
# double sluice's share of the run time.
ENGINE_WORKLOADS = {"sluice-noadaptive": ("skew_join",)}
TIMEOUT = 600.0

DATA = {
    "seed": 20261121, "events": 10_000_000, "duplicates": 1_000_000, "users": 100_000,
    "items": 2_000_000, "days": 28, "countries": 30, "categories": 50, "parts": 8,
    "skew_fact": 20_000_000, "skew_dim": 1_000_000, "hot_key": 7, "hot_share": 0.30,
}
DATA_NOTE = (f"Generated data (`bench/data/seeds`, seed {DATA['seed']}): events "
             f"{DATA['events'] / 1e6:g}M rows, users {DATA['users'] / 1e3:g}k, items "
             f"{DATA['items'] / 1e6:g}M, skew_fact {DATA['skew_fact'] / 1e6:g}M rows "
             f"({DATA['hot_share']:.0%} on one key) x skew_dim {DATA['skew_dim'] / 1e6:g}M")

WEEK = 7               # tumbling window length in days
HEAVY_WEEK = 28        # a user-week with at least this many events is "heavy"
CHECKSUM_MOD = 1009

WORKLOADS = {
    "join_broadcast_write": "events x users (100k, broadcast) -> group by country, day -> Parquet",
    "join_shuffle_write": "events x items (2M, shuffle) -> group by category, day -> Parquet",
    "dedup_event_id": "events: distinct on event_id (10% duplicates), count + sums",
    "skew_join": "skew_fact (20M, 30% one key) x skew_dim (1M) on k, count + sums",
    "daily_features": "per user-day counts, weekly + per-user windows, users lookup, transforms",
    "sort_checksum": "sort events by user_id, day, event_id; position-weighted checksum",
}

READ_BACK = "SELECT count(*) AS groups, sum(n) AS n, sum({value}) AS {value} FROM read_parquet('{out}/*.parquet')"

SQL = {
    "join_broadcast_write": """
        COPY (SELECT u.country, e.day, count(*) AS n, sum(e.amount) AS spend
              FROM events e JOIN users u ON e.user_id = u.user_id
              GROUP BY u.country, e.day) TO '{out}/part-0.parquet' (FORMAT parquet)""",
    "join_shuffle_write": """
        COPY (SELECT i.category, e.day, count(*) AS n, sum(e.amount * i.price) AS revenue
              FROM events e JOIN items i ON e.item_id = i.item_id
              GROUP BY i.category, e.day) TO '{out}/part-0.parquet' (FORMAT parquet)""",
    "dedup_event_id": """
        SELECT count(*) AS rows, sum(event_id) AS sum_event_id, sum(amount) AS amount
        FROM (SELECT DISTINCT ON (event_id) * FROM events)""",
    "skew_join": """
        SELECT count(*) AS n, sum(f.amount) AS amount, sum(d.weight) AS weight
        FROM skew_fact f JOIN skew_dim d ON f.k = d.k""",
    "daily_features": f"""
        WITH daily AS (
            SELECT user_id, day, count(*) AS n_day, sum(amount) AS spend
            FROM events GROUP BY user_id, day),
        windows AS (
            SELECT *, sum(n_day) OVER (PARTITION BY user_id, day // {WEEK}) AS n_week,
                      sum(n_day) OVER (PARTITION BY user_id) AS n_user
            FROM daily),
        features AS (
            SELECT w.*, u.country, u.segment,
                   n_day / n_week AS share_week, n_week / n_user AS share_user,
                   spend / n_day AS avg_spend,
                   CASE WHEN n_week >= {HEAVY_WEEK} THEN 1 ELSE 0 END AS heavy,
                   u.segment * (spend / n_day) AS weighted
            FROM windows w JOIN users u ON w.user_id = u.user_id)
        SELECT count(*) AS rows, sum(n_week) AS n_week, sum(n_user) AS n_user,
               sum(share_week) AS share_week, sum(share_user) AS share_user,
               sum(avg_spend) AS avg_spend, sum(heavy) AS heavy, sum(weighted) AS weighted,
               count(DISTINCT country) AS countries
        FROM features""",
    "sort_checksum": f"""
        SELECT count(*) AS rows, sum((rn - 1) * (event_id % {CHECKSUM_MOD})) AS checksum
        FROM (SELECT event_id,
                     row_number() OVER (ORDER BY user_id, day, event_id) AS rn
              FROM events)""",
}
WRITE_VALUE = {"join_broadcast_write": "spend", "join_shuffle_write": "revenue"}


def dict_answer(**values) -> dict:
    """An answer dict with JSON values (Decimal -> float, numpy ints -> int...)."""
    return {k: tpch.json_value(v) for k, v in values.items()}


def check(workload: str, answer, reference):
    """None when every key matches (floats to 1e-6 relative), else the differing keys."""
    return check_figures(answer, reference, rel=1e-6)


def check_figures(answer, reference, rel: float):
    """None when `answer` has the reference's keys and values (floats to `rel`), else what differs."""
    if not isinstance(answer, dict) or answer.keys() != reference.keys():
        return f"got {answer}, expected keys {sorted(reference)}"
    bad = [f"{k}: got {answer[k]!r}, expected {reference[k]!r}" for k in reference
           if not tpch.values_equal(answer[k], reference[k], rel=rel, abs_=1e-6)]
    return "; ".join(bad) or None


def same_answer(a, b) -> bool:
    return check("", a, b) is None


def prepare(sf: float):
    """The data directory engines get, and its manifest (``--sf`` does not apply)."""
    from bench import data
    return data.ensure_seeds(DATA), {"seeds": data.seeds_manifest()}

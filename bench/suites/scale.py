"""The ``scale`` suite: one join + aggregate at 0.1x, 1x and 4x of the memory budget.

The question is how time and memory grow when the data outgrows memory.  So the memory
budget stays fixed (``BUDGET``: sluice's ``SLUICE_MEMORY_BUDGET``, DuckDB's
``memory_limit``) and the data grows: the inputs' in-memory (Arrow) size is 0.1x, 1x and
4x the budget.  A well-behaved engine then takes time proportional to the data (4x/1x near
4) while its peak memory stays near the budget however large the data gets, spilling the
rest.  Varying the budget over fixed data instead would answer a different question (how
much a smaller budget slows the same job) and would compare unequal amounts of work
within one table.  Polars has no memory budget: it runs in memory, and its peak RSS shows
what the query needs without one.

Data (``bench/data/scale/<size>/``, numpy with a fixed seed, see
``bench.data.ensure_scale``): ``fact`` (``k`` join key, ``u`` group key, ``v`` float64;
24 bytes a row, 8 files) and ``dim`` (``k`` = 0..rows-1 shuffled, ``w`` float64; one row
per ``FACT_PER_DIM`` fact rows, so it grows with the fact table and is never broadcast
above the smallest size).  Every fact row finds its dim row; ``u`` has one value per
``FACT_PER_GROUP`` fact rows, so the aggregation's output grows with the data too.

Query (DuckDB is the reference; the others write the same in their API)::

    SELECT count(*) AS groups, sum(n) AS n, sum(total) AS total FROM (
      SELECT f.u, count(*) AS n, sum(f.v * d.w) AS total
      FROM fact f JOIN dim d ON f.k = d.k GROUP BY f.u)

Each run is a fresh process (``PROCESS_PER = "run"``), so its peak RSS (``ru_maxrss``,
interpreter and imports included) is that run's alone.  Stdlib-only.
"""
from bench.suites import seeds

ENGINES = ("sluice", "duckdb", "polars")
REFERENCE = "duckdb"
PROCESS_PER = "run"
TIMEOUT = 900.0

BUDGET_BYTES = 512 << 20
BUDGET = "512MiB"
FACT_ROW_BYTES = 24          # k, u int64 + v float64
DIM_ROW_BYTES = 16           # k int64 + w float64
FACT_PER_DIM = 4
FACT_PER_GROUP = 16
MULTIPLES = {"0.1x": 0.1, "1x": 1.0, "4x": 4.0}


def fact_rows(multiple: float) -> int:
    """Fact rows whose fact + dim tables take ``multiple`` x the budget in memory."""
    per_fact_row = FACT_ROW_BYTES + DIM_ROW_BYTES / FACT_PER_DIM
    return int(round(multiple * BUDGET_BYTES / per_fact_row))


DATA = {"seed": 20261121, "parts": 8, "fact_per_dim": FACT_PER_DIM, "fact_per_group": FACT_PER_GROUP,
        "fact_rows": {size: fact_rows(m) for size, m in MULTIPLES.items()}}

WORKLOADS = {
    f"join_agg_{size}": (f"fact ({DATA['fact_rows'][size] / 1e6:.1f}M rows) x dim on k, group by u; "
                         f"inputs {MULTIPLES[size]:g}x the {BUDGET} budget")
    for size in MULTIPLES
}
DATA_NOTE = (f"Generated data (`bench/data/scale`, seed {DATA['seed']}): fact x dim join + "
             f"group-by with the inputs at {', '.join(MULTIPLES)} a fixed memory budget of "
             f"{BUDGET} (sluice `SLUICE_MEMORY_BUDGET`, DuckDB `memory_limit`; Polars has none)")

SQL = """
    SELECT count(*) AS groups, sum(n) AS n, sum(total) AS total FROM (
      SELECT f.u, count(*) AS n, sum(f.v * d.w) AS total
      FROM read_parquet('{data}/fact/*.parquet') f
      JOIN read_parquet('{data}/dim/*.parquet') d ON f.k = d.k
      GROUP BY f.u)"""


def size_of(workload: str) -> str:
    """``join_agg_4x`` -> ``4x``."""
    return workload.rsplit("_", 1)[1]


def data_dir(root: str, workload: str) -> str:
    return f"{root}/{size_of(workload)}"


def answer(groups, n, total) -> dict:
    return {"groups": int(groups), "n": int(n), "total": float(total)}


def check(workload: str, answer, reference):
    """None when counts match exactly and the float sum to 1e-9 relative."""
    return seeds.check_figures(answer, reference, rel=1e-9)


def same_answer(a, b) -> bool:
    return check("", a, b) is None


def prepare(sf: float):
    """The data directory engines get, and its manifest (``--sf`` does not apply)."""
    from bench import data
    return data.ensure_scale(DATA), {"scale": data.generated_manifest("scale")}

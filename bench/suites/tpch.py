"""The ``tpch`` suite: the 22 TPC-H queries, sluice against DuckDB and Polars (and peers).

- DuckDB runs the official query text, ``bench/tpch/sql/qNN.sql``, over views on the
  Parquet tables; it is the reference engine, so its answer is the truth.
- sluice runs ``bench/tpch/queries.py`` (its Dataset API; verified against DuckDB at
  SF 0.1 by ``tests/integration/test_tpch.py``).
- Polars runs ``bench/tpch/polars_queries.py`` (lazy API, subqueries rewritten as
  joins and aggregations the same way).

Data: the eight tables from ``tpchgen-cli`` at ``bench/data/sf{N}/<table>/`` (see
``bench/data.py``): dates are ``date32``, money and quantities ``decimal128(15, 2)``.

Answer interface (every engine, peers included): a workload function returns
``{"columns": [names], "rows": [[values...]]}`` holding JSON values only: integers as
int, decimals and floats as float, dates and timestamps as ISO strings, null as None.
``rows_answer(columns, rows)`` builds it from any Python values (``Decimal``, ``date``,
``datetime``, numpy scalars...).  ``check(workload, answer, reference)`` compares two
answers and returns None when they agree, else a one-line reason:

- row count and column count must be equal; columns are compared by position (names
  differ between engines: ``count_star()`` vs ``count_order``);
- integers and strings must be equal; as soon as one side is a float, values agree
  within ``REL`` relative or ``ABS`` absolute (engines sum in decimal or in float and
  round quotients differently); None equals only None;
- order: rows are compared position by position, except that a run of rows that tie on
  the query's ORDER BY columns (``ORDER_BY``) may come in any order within the run.  So
  a wrong value, a missing or extra row, or a wrong order on the ORDER BY columns is
  caught, and the arbitrary order of ties is not.  (A tie that straddles a LIMIT could
  still differ legitimately; no TPC-H validation answer has one.)

This module is stdlib-only: engine subprocesses, peers' virtualenvs included, import it.
"""
from __future__ import annotations

import datetime
import decimal
import math
from pathlib import Path

ENGINES = ("sluice", "duckdb", "polars")
REFERENCE = "duckdb"
TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")
# One process per (engine, query) runs the warm-up and every timed run: 22 queries x
# (1 + runs) runs x engines processes would cost more in interpreter starts and imports
# (~1 s each) than most queries take at SF 1.
PROCESS_PER = "workload"
TIMEOUT = 300.0  # seconds for one (engine, query) process: warm-up + all timed runs

SQL_DIR = Path(__file__).resolve().parent.parent / "tpch" / "sql"

WORKLOADS = {
    "q01": "pricing summary report",
    "q02": "minimum cost supplier",
    "q03": "shipping priority",
    "q04": "order priority checking",
    "q05": "local supplier volume",
    "q06": "forecasting revenue change",
    "q07": "volume shipping",
    "q08": "national market share",
    "q09": "product type profit measure",
    "q10": "returned item reporting",
    "q11": "important stock identification",
    "q12": "shipping modes and order priority",
    "q13": "customer distribution",
    "q14": "promotion effect",
    "q15": "top supplier",
    "q16": "parts/supplier relationship",
    "q17": "small-quantity-order revenue",
    "q18": "large volume customer",
    "q19": "discounted revenue",
    "q20": "potential part promotion",
    "q21": "suppliers who kept orders waiting",
    "q22": "global sales opportunity",
}

# Positions (0-based) of each query's ORDER BY columns in its output; [] = no ORDER BY
# (one-row aggregates: the row order question does not arise).
ORDER_BY = {
    "q01": [0, 1], "q02": [0, 2, 1, 3], "q03": [1, 2], "q04": [0], "q05": [1], "q06": [],
    "q07": [0, 1, 2], "q08": [0], "q09": [0, 1], "q10": [2], "q11": [1], "q12": [0],
    "q13": [1, 0], "q14": [], "q15": [0], "q16": [3, 0, 1, 2], "q17": [], "q18": [4, 3],
    "q19": [], "q20": [0], "q21": [1, 0], "q22": [0],
}

REL = 1e-6
ABS = 1e-4


def sql_text(query: str) -> str:
    """The official SQL of one query (``q01`` .. ``q22``)."""
    return (SQL_DIR / f"{query}.sql").read_text()


# ---------------------------------------------------------------- building answers


def json_value(v):
    """One Python value as the answer interface wants it (see module docstring)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return v
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, datetime.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, datetime.timedelta):
        return v.total_seconds()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "item"):          # numpy / pandas scalars, without importing numpy
        return json_value(v.item())
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    return str(v)


def rows_answer(columns, rows) -> dict:
    """``{"columns": [...], "rows": [[...], ...]}`` from column names and row sequences."""
    columns = [str(c) for c in columns]
    out = [[json_value(v) for v in row] for row in rows]
    bad = [i for i, r in enumerate(out) if len(r) != len(columns)]
    if bad:
        raise ValueError(f"row {bad[0]} has {len(out[bad[0]])} values for {len(columns)} columns")
    return {"columns": columns, "rows": out}


def columns_answer(columns, column_values) -> dict:
    """The same from column-major data (``[c.to_pylist() for c in table.columns]``)."""
    return rows_answer(columns, zip(*column_values) if column_values else [])


# ---------------------------------------------------------------- comparing answers


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def values_equal(a, b, rel: float = REL, abs_: float = ABS) -> bool:
    """Scalars (floats with tolerance), lists and dicts of them."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if not (_is_num(a) and _is_num(b)):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k], rel, abs_) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y, rel, abs_) for x, y in zip(a, b))
    return type(a) is type(b) and a == b or (_is_num(a) and _is_num(b) and a == b)


def _sort_key(row):
    """A total order that puts tolerance-equal rows next to each other (almost always)."""
    key = []
    for v in row:
        if v is None:
            key.append((3, 0))
        elif _is_num(v) or isinstance(v, bool):
            key.append((0, float(f"{float(v):.6g}")) if not (isinstance(v, float) and math.isnan(v))
                       else (1, 0))
        else:
            key.append((2, str(v)))
    return key


def _same_multiset(xs, ys, rel, abs_) -> bool:
    xs, ys = sorted(xs, key=_sort_key), sorted(ys, key=_sort_key)
    if all(values_equal(x, y, rel, abs_) for x, y in zip(xs, ys)):
        return True
    if len(xs) > 2000:
        return False
    left = list(ys)   # rounding put near-equal rows apart: match greedily instead
    for x in xs:
        hit = next((i for i, y in enumerate(left) if values_equal(x, y, rel, abs_)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


def _short(v, n=160) -> str:
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


def diff(answer, reference, order_by=None, rel: float = REL, abs_: float = ABS):
    """None when ``answer`` matches ``reference``, else why not (one line).

    ``order_by``: positions of the ORDER BY columns.  None compares rows strictly by
    position; a list lets rows that tie on those columns come in any order among
    themselves ([] = the row order does not matter at all).
    """
    if not isinstance(answer, dict) or "rows" not in answer:
        return f"answer is not {{columns, rows}}: {_short(answer)}"
    a, b = answer["rows"], reference["rows"]
    if len(a) != len(b):
        return f"{len(a)} rows, expected {len(b)}"
    ncols = len(reference.get("columns") or (b[0] if b else []))
    got_cols = len(answer.get("columns") or (a[0] if a else []))
    if got_cols != ncols:
        return f"{got_cols} columns, expected {ncols}"
    names = reference.get("columns") or [str(i) for i in range(ncols)]
    start = 0
    while start < len(b):
        end = start + 1
        if order_by is not None:   # the run of reference rows tied with row `start`
            keys = [b[start][i] for i in order_by]
            while end < len(b) and values_equal([b[end][i] for i in order_by], keys, rel, abs_):
                end += 1
        if end - start == 1:
            for j, (x, y) in enumerate(zip(a[start], b[start])):
                if not values_equal(x, y, rel, abs_):
                    return f"row {start} column {j} ({names[j]}): got {_short(x)}, expected {_short(y)}"
        else:
            for r in range(start, end):
                if not values_equal([a[r][i] for i in order_by], [b[r][i] for i in order_by], rel, abs_):
                    return (f"row {r}: order-by columns {[names[i] for i in order_by]} got "
                            f"{_short([a[r][i] for i in order_by])}, expected "
                            f"{_short([b[r][i] for i in order_by])}")
            if not _same_multiset(a[start:end], b[start:end], rel, abs_):
                return (f"rows {start}..{end - 1} (tied on the order-by columns) differ: "
                        f"got {_short(a[start:end])}, expected {_short(b[start:end])}")
        start = end
    return None


def same_answer(a, b, order_by=None) -> bool:
    """True when answer ``a`` matches reference ``b`` (see ``diff``)."""
    return diff(a, b, order_by) is None


def check(workload: str, answer, reference):
    """The runner's hook: None when right, else the reason it is wrong."""
    return diff(answer, reference, ORDER_BY.get(workload))


def summary(answer, keep: int = 25):
    """What the results JSON keeps of an answer: everything up to ``keep`` rows."""
    if isinstance(answer, dict) and isinstance(answer.get("rows"), list) and len(answer["rows"]) > keep:
        return {"columns": answer.get("columns"), "num_rows": len(answer["rows"]),
                "rows_head": answer["rows"][:keep], "truncated": True}
    return answer


def prepare(sf: float):
    """Generate (once) and locate the tables: the ``--data`` directory engines get."""
    from bench import data
    return data.ensure_tables(sf, TABLES), data.manifests(sf, TABLES)

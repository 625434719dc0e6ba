"""SQL over sluice: `sluice.sql("SELECT ...", tables={"events": ds})` plans a query into a lazy Dataset.

The query is parsed and qualified by sqlglot (`front`), then translated into the same logical
plan the Dataset API builds (`planner`, `relations`, `subqueries`, `expressions`), so SQL gets
the same optimizer, exchanges, skew handling, quarantine, resume and both runners. No SQL
text is handed to another engine.

Tables come from `tables=` (Datasets, or paths of Parquet, CSV or JSON files), then from the
session catalog that `register()` fills. A text may hold several statements: `CREATE VIEW
name AS SELECT ...` (or `CREATE TABLE name AS`, kept in memory for the rest of the text) and
`DROP VIEW name` before the one SELECT it returns, and `COPY (SELECT ...) TO 'path' (FORMAT parquet |
csv | json, PARTITION_BY (cols), OVERWRITE | APPEND)`, which writes at once through the commit
protocol (a text of only COPY returns one row: path, files, rows, bytes). `EXPLAIN SELECT ...` returns the lines of the
plans `Dataset.explain()` prints, as a one-column dataset `plan`.
"""

from __future__ import annotations

import re
from typing import Mapping

from ..api.dataset import Dataset
from ..errors import SqlError

_catalog: dict[str, Dataset] = {}


def register(name: str, table) -> None:
    """Make `table` (a Dataset, or a path) readable as `name` by every later sluice.sql() call."""
    _catalog[name.lower()] = _as_dataset(name, table)


def unregister(name: str) -> None:
    _catalog.pop(name.lower(), None)


def registered() -> dict[str, Dataset]:
    return dict(_catalog)


def _as_dataset(name: str, table) -> Dataset:
    if isinstance(table, Dataset):
        return table
    if isinstance(table, (str, bytes)) or hasattr(table, "__fspath__"):
        import os
        path = os.fspath(table)
        path = path.decode() if isinstance(path, bytes) else path
        from .. import read_csv, read_json, read_parquet
        lowered = path.lower().rstrip("/")
        if lowered.endswith(".csv"):
            return read_csv(path)
        if lowered.endswith((".json", ".jsonl", ".ndjson")):
            return read_json(path)
        return read_parquet(path)
    raise SqlError(f"Table {name!r} is a {type(table).__name__}; give a sluice Dataset or the path of Parquet, "
                   f"CSV or JSON files.")


_EXPLAIN = re.compile(r"^(\s*)explain\b", re.IGNORECASE)


def split_explain(query: str) -> tuple[bool, str]:
    """(whether the text starts with EXPLAIN, the text with that word blanked out, so positions still match)."""
    found = _EXPLAIN.match(query)
    if found is None:
        return False, query
    return True, query[:found.start(0)] + " " * (found.end(0) - found.start(0)) + query[found.end(0):]


def sql(query: str, tables: Mapping[str, object] | None = None, **named_tables) -> Dataset:
    """Plan a SQL query (DuckDB's dialect) into a lazy Dataset; nothing runs until an action.

    `tables` (or keyword arguments) name the tables the query reads: Datasets, or paths of files.
    Tables registered with `sluice.register()` are readable too. Unknown tables, columns and
    functions raise a SqlError naming the line and column.
    """
    if not isinstance(query, str):
        raise SqlError(f"sluice.sql() takes the query as a string, got {type(query).__name__}.")
    from .front import Query, check_tables, parse, qualify_statement
    from .statements import run_statements
    available = dict(_catalog)
    for name, table in {**(tables or {}), **named_tables}.items():
        available[name.lower()] = _as_dataset(name, table)
    explain, query = split_explain(query)
    dataset = run_statements(Query(query), parse(query), available, check_tables, qualify_statement)
    if explain:
        import pyarrow as pa

        from .. import from_arrow
        return from_arrow(pa.table({"plan": dataset.explain(show=False).splitlines()}))
    return dataset


__all__ = ["sql", "register", "unregister", "registered", "split_explain", "SqlError"]

"""sluice: batch data pipelines over Parquet, on every core of one machine or on a Ray cluster.

This module is the public API: readers and constructors that make a `Dataset`, the
expression builders `col`, `lit` and `when`, `configure`, and the error classes.
"""

from __future__ import annotations

import os

_ALLOCATOR = os.environ.get("SLUICE_ALLOCATOR", "fast").lower()
if _ALLOCATOR != "keep":
    # Arrow's C++ code and Polars' jemalloc read these once, on first use; see backends/local/budget.py.
    # Polars prepends its own decay defaults to _RJEM_MALLOC_CONF when imported, and child processes
    # inherit the result: a setting made only of decay options is ours to replace (a user who tunes
    # the allocators sets SLUICE_ALLOCATOR=keep).
    _STRICT = _ALLOCATOR == "strict"
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc" if _STRICT else "mimalloc")
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "10")
    _OPTIONS = [o for o in os.environ.get("_RJEM_MALLOC_CONF", "").split(",") if o]
    if all(o.split(":")[0] in ("dirty_decay_ms", "muzzy_decay_ms") for o in _OPTIONS):
        _DECAY = "0" if _STRICT else "100"
        os.environ["_RJEM_MALLOC_CONF"] = f"dirty_decay_ms:{_DECAY},muzzy_decay_ms:{_DECAY}"

from typing import Any, Iterable, Sequence  # noqa: E402

import pyarrow as pa

from .api.dataset import Dataset
from .config import configure
from .driver.resume import resume
from .errors import (
    ColumnNotFoundError, CommitConflictError, CorruptFileError, ExpressionTypeError, PlanError, ResumeError,
    RunnerError, SchemaMismatchError, SinkError, SluiceError, SourceError, SourceNotFoundError, SqlError,
    TooManyBadRecordsError, TransientError, UdfOutputError, UserCodeError,
)
from .expr.tree import Expr, coalesce, col, count, dense_rank, lit, rank, row_number, when
from .io.memory import ArrowSource, RangeSource
from .io.parquet import ParquetSource
from .io.sinks import WriteResult
from .io.text import CsvSource, JsonSource
from .plan.logical import Scan
from .sql import register, sql  # noqa: E402 - `sluice.sql` is the function; the package is sluice.sql's module

__version__ = "0.1.0"

def _scan(source, columns: Sequence[str] | None, filter: Expr | None) -> Dataset:
    dataset = Dataset(Scan(source))
    if filter is not None:
        dataset = dataset.filter(filter)
    if columns is not None:
        dataset = dataset.select(*columns)
    return dataset


def read_parquet(path, *, columns: Sequence[str] | None = None, filter: Expr | None = None,
                 filesystem=None, partitioning: str | None = "hive", schema: pa.Schema | None = None) -> Dataset:
    """Read Parquet: a file, a directory (hive partitions become columns), a glob, or a list.

    `filter` and `columns` are pushed into the scan: partitions and row groups that cannot
    match are skipped, and only the needed columns are decoded.
    """
    return _scan(ParquetSource(path, filesystem, partitioning, schema), columns, filter)


def read_csv(path, *, columns: Sequence[str] | None = None, filter: Expr | None = None, filesystem=None,
             schema: pa.Schema | None = None, delimiter: str = ",", has_header: bool = True,
             null_values: Sequence[str] | None = None) -> Dataset:
    """Read CSV files; the first file's inferred schema (or `schema`) applies to all."""
    return _scan(CsvSource(path, filesystem, schema, delimiter, has_header, null_values), columns, filter)


def read_json(path, *, columns: Sequence[str] | None = None, filter: Expr | None = None, filesystem=None,
              schema: pa.Schema | None = None) -> Dataset:
    """Read newline-delimited JSON files."""
    return _scan(JsonSource(path, filesystem, schema), columns, filter)


def from_arrow(data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch]) -> Dataset:
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    elif not isinstance(data, pa.Table):
        data = pa.Table.from_batches(list(data))
    return Dataset(Scan(ArrowSource(data, "arrow")))


def from_pandas(frame) -> Dataset:
    return Dataset(Scan(ArrowSource(pa.Table.from_pandas(frame, preserve_index=False), "pandas")))


def from_polars(frame) -> Dataset:
    from .expr.types import polars_to_arrow
    return Dataset(Scan(ArrowSource(polars_to_arrow(frame), "polars")))


def from_items(items: Sequence[dict[str, Any]], schema: pa.Schema | None = None) -> Dataset:
    """A dataset from a list of dicts, one per row."""
    items = list(items)
    if not items and schema is None:
        raise PlanError("from_items() got no rows and no schema. Pass schema= to make an empty dataset.")
    return Dataset(Scan(ArrowSource(pa.Table.from_pylist(items, schema=schema), "items")))


def range(start: int, end: int | None = None, step: int = 1) -> Dataset:  # noqa: A001 - mirrors builtins.range
    """Integers in a column `id`: range(n) is 0..n-1; range(a, b, step) as Python's range."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise PlanError("range() step must not be zero.")
    return Dataset(Scan(RangeSource(start, end, step)))


__all__ = [
    "Dataset", "Expr", "col", "lit", "when", "coalesce", "count", "row_number", "rank", "dense_rank", "configure", "read_parquet", "read_csv", "read_json", "from_arrow",
    "from_pandas", "from_polars", "from_items", "range", "WriteResult",
    "SluiceError", "PlanError", "ColumnNotFoundError", "ExpressionTypeError", "SourceError", "SourceNotFoundError",
    "CorruptFileError", "SchemaMismatchError", "UserCodeError", "UdfOutputError", "SinkError", "RunnerError",
    "CommitConflictError", "TransientError", "TooManyBadRecordsError", "ResumeError", "resume", "sql", "register",
    "SqlError",
]

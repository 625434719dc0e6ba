"""The connector contract: a `Source` describes its data and splits a scan into read tasks.

A source knows its schema without reading rows, and turns a scan (the columns, predicates
and limit that the optimizer pushed into it) into `ReadTask`s. A read task is the unit of
parallel reading: it yields Arrow blocks, with its estimated in-memory size for admission
against the memory budget, and says which files and rows it covers for the event log.
Predicates that compile to pyarrow are applied by the source; the others are applied by
the stage after the read, so a source never has to understand every expression.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ..expr.compile import to_arrow_filter, to_polars
from ..expr.tree import Expr, conjoin

TARGET_TASK_BYTES = 64 * 1024 * 1024
MIN_TASK_BYTES = 4 * 1024 * 1024


FILE_COLUMN, ROW_COLUMN = "__sluice_file", "__sluice_row"
POSITION_COLUMNS = (FILE_COLUMN, ROW_COLUMN)


@dataclass(frozen=True)
class ReadTask:
    read: Callable[[], Iterator[pa.Table]]
    estimated_bytes: int
    description: str
    files: tuple[str, ...] = field(default=())
    # (file or label, first row, end row) per piece read; rows are None where a whole file is read
    rows: tuple[tuple[str, int | None, int | None], ...] = field(default=())
    input_bytes: int = 0  # bytes of storage the task covers: whole files' sizes, or its row groups'
    # The same rows as `read`, each with its source file and row position in POSITION_COLUMNS.
    # Only called to say where a bad record came from, so it favours simplicity over speed.
    read_positions: Callable[[], Iterator[pa.Table]] | None = None


@dataclass(frozen=True)
class ScanRequest:
    """What the optimized plan asks of a source."""

    columns: tuple[str, ...] | None
    predicates: tuple[Expr, ...]
    limit: int | None
    schema: pa.Schema | None = None  # the source's schema; without it nothing is pushed to the reader
    parallelism: int = 1  # threads the runner will read with; sources size tasks to keep them busy
    max_task_bytes: int = TARGET_TASK_BYTES  # the runner lowers it when the memory budget is small
    # Input that cannot be decoded (a line that does not parse, a corrupt file or row group) is
    # passed here as (source file, 1-based line or None, the line's text or None, the error) and
    # skipped: this is on_error="quarantine". Without it (on_error="raise"), the reader raises.
    on_bad_input: Callable[[str, int | None, str | None, BaseException], None] | None = field(
        default=None, compare=False, repr=False)

    @cached_property
    def _arrow_filters(self) -> tuple[pc.Expression | None, ...]:
        """Each predicate compiled for the reader once; None where it does not compile."""
        return tuple(to_arrow_filter(e, self.schema) for e in self.predicates)

    @cached_property
    def pushed_predicates(self) -> tuple[Expr, ...]:
        """The predicates the source applies as it reads (those that compile for the reader)."""
        return tuple(e for e, compiled in zip(self.predicates, self._arrow_filters) if compiled is not None)

    @cached_property
    def polars_predicates(self) -> tuple:
        """The pushable predicates as Polars expressions, for sources that decode with Polars."""
        return tuple(to_polars(e) for e in self.pushed_predicates)

    def pushable(self, expr: Expr) -> bool:
        for predicate, compiled in zip(self.predicates, self._arrow_filters):
            if predicate is expr:
                return compiled is not None
        return to_arrow_filter(expr, self.schema) is not None

    def task_bytes(self, total_bytes: int) -> int:
        """A task size that gives every thread about four tasks (for balance), within sane bounds."""
        return max(MIN_TASK_BYTES, min(self.max_task_bytes, total_bytes // (4 * max(1, self.parallelism))))

    @property
    def arrow_filter(self) -> pc.Expression | None:
        result = None
        for p in (compiled for compiled in self._arrow_filters if compiled is not None):
            result = p if result is None else result & p
        return result

    def arrow_filter_for(self, physical: pa.Schema) -> pc.Expression | None:
        """The pushed predicates compiled against a file's own schema, for pruning by its statistics:
        a file that stores strings as string_view needs string_view literals (Arrow has no kernel that
        compares string_view with string). A predicate that does not compile there is left out of
        pruning; the read still applies it."""
        result = None
        for predicate in self.pushed_predicates:
            compiled = to_arrow_filter(predicate, physical)
            if compiled is not None:
                result = compiled if result is None else result & compiled
        return result

    @property
    def residual(self) -> Expr | None:
        """The conjunction of predicates the source cannot apply; the stage applies them."""
        return conjoin(e for e in self.predicates if not self.pushable(e))

    def read_columns(self, schema: pa.Schema) -> list[str]:
        """Columns to read: the requested ones plus those the residual predicates need."""
        from ..expr.tree import columns_of
        wanted = list(schema.names if self.columns is None else self.columns)
        residual = self.residual
        if residual is not None:
            wanted += [c for c in schema.names if c in columns_of(residual) and c not in wanted]
        return wanted


class Source(ABC):
    """A dataset that can be scanned. Subclass it to add a connector."""

    @property
    @abstractmethod
    def schema(self) -> pa.Schema:
        """The full schema, known without reading rows."""

    @abstractmethod
    def plan_tasks(self, request: ScanRequest) -> list[ReadTask]:
        """Split a scan into read tasks, pruning what the request lets it skip."""

    @abstractmethod
    def describe(self) -> str:
        """A short description for explain() and progress: kind and location."""

    def estimated_bytes(self, columns: tuple[str, ...] | None = None, predicates=()) -> int | None:
        """The in-memory size of a full scan of these columns, if known cheaply (`predicates`: the scan's,
        which a source may use to size it on data the scan reads)."""
        return None

    def polars_scan(self, request: ScanRequest) -> tuple[Any, int] | None:
        """The scan as a Polars LazyFrame and the bytes it reads, for in-memory fusion
        (plan/fusion.py), or None when this source must be read through its read tasks."""
        return None


def apply_request_in_memory(table: pa.Table, request: ScanRequest) -> pa.Table:
    """Apply the pushable filter, then the column selection, to a whole table a reader produced."""
    arrow_filter = request.arrow_filter
    if arrow_filter is not None and table.num_rows:
        table = table.filter(arrow_filter)
    read_columns = request.read_columns(table.schema)
    if table.column_names != read_columns:
        table = table.select(read_columns)
    if request.limit is not None and request.residual is None and table.num_rows > request.limit:
        table = table.slice(0, request.limit)
    return table


def with_positions(table: pa.Table, file: str | None, first_row: int = 0) -> pa.Table:
    """`table` with its source file and each row's position in it, as POSITION_COLUMNS."""
    n = table.num_rows
    files = pa.array([file] * n, pa.string()) if file is not None else pa.nulls(n, pa.string())
    rows = pa.array(range(first_row, first_row + n), pa.int64())
    return table.append_column(FILE_COLUMN, files).append_column(ROW_COLUMN, rows)


def apply_request_keeping_positions(table: pa.Table, request: ScanRequest) -> pa.Table:
    """`apply_request_in_memory` for a table that carries POSITION_COLUMNS: they survive the selection."""
    arrow_filter = request.arrow_filter
    if arrow_filter is not None and table.num_rows:
        table = table.filter(arrow_filter)
    read_columns = request.read_columns(pa.schema([f for f in table.schema if f.name not in POSITION_COLUMNS]))
    table = table.select(read_columns + list(POSITION_COLUMNS))
    if request.limit is not None and request.residual is None and table.num_rows > request.limit:
        table = table.slice(0, request.limit)
    return table


def scale_estimate(total_bytes: int, schema: pa.Schema, columns: list[str] | None) -> int:
    """Scale a whole-row byte count down to the share of the columns read, by type width."""
    if columns is None or not len(schema):
        return total_bytes
    weights = {f.name: _type_weight(f.type) for f in schema}
    whole = sum(weights.values()) or 1
    return int(total_bytes * sum(weights.get(c, 0) for c in columns) / whole)


def _type_weight(dtype: pa.DataType) -> int:
    try:
        return max(1, dtype.bit_width // 8)
    except ValueError:
        return 16  # strings, lists and structs: variable width, count them as wide

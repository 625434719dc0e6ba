"""Physical operators: what runs on one block inside a task, the same for every runner.

A stage is a chain of these. Consecutive filters and projections fuse into one
`PolarsStep`, a single Polars lazy query per block. Pure column selection and renaming skip
Polars and stay zero-copy in Arrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from ..errors import ExpressionEvaluationError, PlanError, UdfOutputError
from ..expr.compile import to_polars
from ..expr.tree import Alias, Column, Expr
from ..expr.types import arrow_to_polars, polars_to_arrow
from ..io.source import POSITION_COLUMNS
from ..kernels.udf import apply_function
from ..plan.logical import MapBatches
from ..plan.reshape import SAMPLE_ROW_COLUMN, Explode, Unpivot


class Operator:
    name = "operator"

    def apply(self, table: pa.Table) -> pa.Table:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class PolarsStep(Operator):
    """Fused filters and projections, run as one Polars lazy query over the block."""

    steps: tuple[tuple[str, object], ...]  # ("filter", Expr) or ("select", tuple[Expr, ...])

    @property
    def name(self) -> str:
        return "+".join(kind.capitalize() for kind, _ in self.steps)

    def apply(self, table: pa.Table) -> pa.Table:
        carried = [c for c in POSITION_COLUMNS if c in table.column_names]  # only when tracing bad records
        if all(kind == "select" and _is_plain_selection(p) for kind, p in self.steps):
            for _, exprs in self.steps:
                table = _arrow_select(table, exprs, carried)
            return table
        frame = self.lazy(arrow_to_polars(table).lazy(), carried)
        try:
            return polars_to_arrow(frame.collect())
        except pl.exceptions.PolarsError as exc:
            raise ExpressionEvaluationError(
                f"Evaluating {self.describe()} failed: {str(exc).splitlines()[0]}") from None

    def lazy(self, frame: pl.LazyFrame, carried: list[str] = ()) -> pl.LazyFrame:
        """The steps over a lazy frame, for a query that goes on after them (`carried`: columns kept as
        they are, the row positions traced for bad records)."""
        for kind, payload in self.steps:
            if kind == "filter":
                frame = frame.filter(to_polars(payload))
            else:
                # with_columns, not select: a literal-only select would give one row, not one per input row
                frame = frame.with_columns([to_polars(e) for e in payload]).select(
                    [e.output_name() for e in payload] + list(carried))
        return frame

    def describe(self) -> str:
        parts = []
        for kind, payload in self.steps:
            text = repr(payload) if kind == "filter" else ", ".join(repr(e) for e in payload)
            parts.append(f"{kind}({text})")
        return " -> ".join(parts)


def _is_plain_selection(exprs) -> bool:
    return all(isinstance(e, Column) or (isinstance(e, Alias) and isinstance(e.expr, Column)) for e in exprs)


def _arrow_select(table: pa.Table, exprs: tuple[Expr, ...], carried: list[str]) -> pa.Table:
    sources = [e.name if isinstance(e, Column) else e.expr.name for e in exprs]
    selected = table.select(sources + carried)
    return selected.rename_columns([e.output_name() for e in exprs] + carried)


@dataclass(frozen=True, eq=False)
class MapBatchesStep(Operator):
    """A map_batches call per block. `apply` runs the function in this process; a backend may run
    the step elsewhere (a UDF worker process, a Ray actor) through the task's `UdfRunner`."""

    node: MapBatches
    # blocks straight from read tasks may be cut into smaller batches for the workers; blocks an
    # exchange made (a repartition by key, a group) reach the function whole
    splittable: bool = False
    name = "MapBatches"

    @property
    def in_processes(self) -> bool:
        return self.node.options.compute == "processes"

    def apply(self, table: pa.Table) -> pa.Table:
        return self.apply_with(table, None)

    def apply_with(self, table: pa.Table, run: Callable[[pa.Table], pa.Table] | None) -> pa.Table:
        """The step over one block, its function called by `run` (None: in this process); row positions,
        carried while bad records are traced, are set aside around the call."""
        node = self.node
        carried = [c for c in POSITION_COLUMNS if c in table.column_names]  # only when tracing bad records
        positions = table.select(carried) if carried else None
        if carried:
            table = table.drop_columns(carried)
        if run is not None:
            result = run(table)
        else:
            result = apply_function(node.fn, table, node.batch_format, dict(node.fn_kwargs), node.fn_name)
        if node.rows == "same" and result.num_rows != table.num_rows:
            raise UdfOutputError(
                f"map_batches function {node.fn_name} returned {result.num_rows} rows for a batch of "
                f"{table.num_rows} rows, but it is declared rows='same' (the default): no row may be lost or "
                f"added. Return one output row per input row, or pass rows='any' to map_batches if the function "
                f"filters or expands rows on purpose.")
        if positions is not None and result.num_rows == positions.num_rows:
            for name in carried:
                result = result.append_column(name, positions[name])
        return result

    def describe(self) -> str:
        return self.node.label()


@dataclass(frozen=True, eq=False)
class LocalLimit(Operator):
    """Keep at most n rows of each task's output; the global limit after it makes it exact."""

    n: int
    name = "LocalLimit"

    def apply(self, table: pa.Table) -> pa.Table:
        return table.slice(0, self.n) if table.num_rows > self.n else table

    def describe(self) -> str:
        return f"LocalLimit {self.n}"


@dataclass(frozen=True, eq=False)
class ExplodeStep(Operator):
    """Explode list columns of each block (plan/reshape.py's Explode says what empty and null lists give)."""

    node: Explode
    name = "Explode"

    def apply(self, table: pa.Table) -> pa.Table:
        try:
            return polars_to_arrow(self.node.apply(arrow_to_polars(table)))
        except pl.exceptions.PolarsError as exc:
            raise ExpressionEvaluationError(
                f"explode({', '.join(map(repr, self.node.columns))}) failed: {str(exc).splitlines()[0]}. "
                f"Columns exploded together need lists of the same length in each row.") from None

    def describe(self) -> str:
        return self.node.label()


@dataclass(frozen=True, eq=False)
class UnpivotStep(Operator):
    """Unpivot each block: its rows, column by column of `on`."""

    node: Unpivot
    name = "Unpivot"

    def apply(self, table: pa.Table) -> pa.Table:
        carried = tuple(c for c in POSITION_COLUMNS if c in table.column_names)  # only when tracing bad records
        return polars_to_arrow(self.node.apply(arrow_to_polars(table), carried))

    def describe(self) -> str:
        return self.node.label()


def sample_keeps(rows: pa.Array | pa.ChunkedArray, fraction: float, seed: int) -> np.ndarray:
    """Which rows a sample keeps, from their row numbers: splitmix64 of (seed, row) under the fraction, so a
    row's fate depends on nothing but the seed and its position (not on blocks, runners or versions)."""
    with np.errstate(over="ignore"):
        x = np.asarray(rows, dtype=np.int64).astype(np.uint64) + np.uint64(
            (seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


@dataclass(frozen=True, eq=False)
class SampleStep(Operator):
    """Keep the rows a sample picks, by the row numbers its stage's RowNumbering added; drop those numbers."""

    fraction: float
    seed: int
    name = "Sample"

    def apply(self, table: pa.Table) -> pa.Table:
        keep = sample_keeps(table.column(SAMPLE_ROW_COLUMN), self.fraction, self.seed)
        return table.drop_columns([SAMPLE_ROW_COLUMN]).filter(pa.array(keep, pa.bool_()))

    def describe(self) -> str:
        return f"Sample {self.fraction:g} seed={self.seed}"


WRITTEN_SCHEMA = pa.schema([("path", pa.string()), ("rows", pa.int64()), ("bytes", pa.int64())])


def written_table(entries: list[dict]) -> pa.Table:
    """A write task's output: one row (path, rows, bytes) per file it staged."""
    return pa.Table.from_pylist(entries, schema=WRITTEN_SCHEMA)


@dataclass(frozen=True, eq=False)
class WriteStep(Operator):
    """Write the block to the sink's staging area; output one row per file written."""

    sink: object
    name = "Write"

    def apply(self, table: pa.Table) -> pa.Table:
        written = self.sink.write_block(table)  # type: ignore[attr-defined]
        return written_table([{"path": path, "rows": rows, "bytes": size} for path, rows, size in written])

    def describe(self) -> str:
        return f"Write {self.sink.describe()}"  # type: ignore[attr-defined]


class StreamOp:
    """An operator over the ordered stream of blocks between two stages (not per block)."""

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        raise NotImplementedError


@dataclass(frozen=True)
class GlobalLimit(StreamOp):
    n: int

    def apply(self, blocks):
        remaining = self.n
        if remaining <= 0:
            return
        for block in blocks:
            if block.num_rows >= remaining:
                yield block.slice(0, remaining)
                return
            remaining -= block.num_rows
            yield block

    def describe(self):
        return f"Limit {self.n}"


@dataclass(frozen=True)
class RowNumbering(StreamOp):
    """Prepend a column numbering the stream's rows from `offset`. The engine plans it from row counts: each
    task is told the number of the first row of its block, counted over the blocks before it in stream
    order, so the numbers do not depend on which task finishes first."""

    name: str
    offset: int = 0

    def number(self, table: pa.Table, first_row: int) -> pa.Table:
        start = self.offset + first_row
        return table.add_column(0, pa.field(self.name, pa.int64()),
                                pa.array(np.arange(start, start + table.num_rows, dtype=np.int64)))

    def apply(self, blocks):
        first_row = 0
        for block in blocks:
            yield self.number(block, first_row)
            first_row += block.num_rows

    def describe(self):
        return f"number rows as {self.name} from {self.offset}"


@dataclass(frozen=True)
class Rebatch(StreamOp):
    """Regroup the stream into blocks of exactly `rows` rows (the last may be shorter)."""

    rows: int

    def __post_init__(self):
        if isinstance(self.rows, bool) or not isinstance(self.rows, int) or self.rows < 1:
            raise PlanError(f"batch_size must be a positive number of rows, got {self.rows!r}.")

    def apply(self, blocks):
        pending: list[pa.Table] = []
        count = 0
        for block in blocks:
            while block.num_rows:
                take = min(self.rows - count, block.num_rows)
                pending.append(block.slice(0, take))
                count += take
                block = block.slice(take)
                if count == self.rows:
                    yield pa.concat_tables(pending).combine_chunks()
                    pending, count = [], 0
        if count:
            yield pa.concat_tables(pending).combine_chunks()

    def describe(self):
        return f"Rebatch {self.rows} rows"


def normalize_block(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Give a block read from a source the types every later operator expects."""
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return polars_to_arrow(arrow_to_polars(table))

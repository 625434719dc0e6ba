"""Exchanges: how blocks are routed between stages, and what reduce tasks do with them.

A wide operation splits into a map side and a reduce side. On the map side, each block may
first be shrunk by a `prepare` step (partial aggregation, per-block distinct, per-block
top-k), then a `Partitioner` assigns its rows to partitions: by a hash of the keys (joins,
aggregations, distinct), by ranges of the sort keys drawn from a sample (sort), or round-robin
(repartition). On the reduce side a `Reducer` turns the rows of one partition, or a group
of coalesced partitions, into an output block. All of this is runner-agnostic: the local
runner keeps partitions in memory and spills them; a distributed runner moves them between
workers. The runner decides partition counts and applies adaptive rules (coalesce, split
skew, switch to broadcast) once the map side has finished and real sizes are known.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from ..expr.types import arrow_to_polars, polars_to_arrow
from ..kernels.aggregates import AggregationPlan
from ..kernels.joins import canonical_key, join_frames
from ..plan.logical import Join, SortSpec
from .operators import Operator

HASH_SEED = 0x51C3


def split_by_partition(table: pa.Table, ids: np.ndarray, num_partitions: int) -> list[tuple[int, pa.Table]]:
    """One table per non-empty partition, each owning its memory.

    Pieces are gathered with `take`, not sliced from one reordered table: a slice keeps its
    whole parent alive, so spilling a slice would free nothing and memory accounting would lie.
    """
    if table.num_rows == 0:
        return []
    # stable argsort of 16-bit keys is a radix sort: linear, where int64 keys take a merge sort
    order = np.argsort(ids.astype(np.uint16) if num_partitions <= 1 << 16 else ids, kind="stable")
    counts = np.bincount(ids, minlength=num_partitions)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    partitions = np.flatnonzero(counts).tolist()
    if table.num_columns == 0:
        return [(p, table.slice(0, int(counts[p]))) for p in partitions]
    indices = [pa.array(order[bounds[p]:bounds[p + 1]]) for p in partitions]
    columns: list[list[pa.Array]] = [[] for _ in partitions]
    for column in table.columns:
        # one contiguous copy of the column, not every take resolving chunks row by row; a column
        # at a time, so the copy adds one column, not one block, to the map task's peak memory
        whole = _one_array(column)
        for piece, index in zip(columns, indices):
            piece.append(whole.take(index))
    return [(p, pa.Table.from_arrays(piece, schema=table.schema)) for p, piece in zip(partitions, columns)]


class Partitioner:
    def assign(self, table: pa.Table, num_partitions: int) -> list[tuple[int, pa.Table]]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class HashPartitioner(Partitioner):
    keys: tuple[str, ...]

    def partition_ids(self, table: pa.Table, num_partitions: int) -> np.ndarray:
        frame = arrow_to_polars(table.select(list(self.keys)))
        keys = [canonical_key(pl.col(k), frame.schema[k]) for k in self.keys]
        if len(keys) == 1:
            hashed = keys[0].hash(seed=HASH_SEED)
        else:
            hashed = pl.struct([k.alias(f"k{i}") for i, k in enumerate(keys)]).hash(seed=HASH_SEED)
        return frame.select(hashed % num_partitions).to_series().to_numpy().astype(np.int64)

    def assign(self, table, num_partitions):
        if num_partitions == 1:
            return [(0, table)] if table.num_rows else []
        return split_by_partition(table, self.partition_ids(table, num_partitions), num_partitions)

    def describe(self):
        return f"hash({', '.join(self.keys)})"


@dataclass(frozen=True)
class RoundRobinPartitioner(Partitioner):
    def assign(self, table, num_partitions):
        return split_by_partition(table, np.arange(table.num_rows) % num_partitions, num_partitions)

    def describe(self):
        return "round-robin"


@dataclass(frozen=True)
class SinglePartitioner(Partitioner):
    def assign(self, table, num_partitions):
        return [(0, table)] if table.num_rows else []

    def describe(self):
        return "single partition"


SAMPLE_ROWS_PER_BLOCK = 256  # rows of sort keys each map task hands in for the range boundaries


def sample_keys(block: pa.Table, keys: list[str]) -> pa.Table:
    """Up to SAMPLE_ROWS_PER_BLOCK rows of a block's sort keys, drawn reproducibly, for
    `RangePartitioner.with_boundaries`."""
    if block.num_rows <= SAMPLE_ROWS_PER_BLOCK:
        return block.select(keys)
    picks = np.random.default_rng(block.num_rows).choice(block.num_rows, SAMPLE_ROWS_PER_BLOCK, replace=False)
    return block.select(keys).take(pa.array(np.sort(picks)))


@dataclass(frozen=True)
class RangePartitioner(Partitioner):
    """Rows go to partitions by comparing their sort keys with boundaries drawn from a sample."""

    spec: SortSpec
    boundaries: pa.Table | None = None

    def with_boundaries(self, sample: pa.Table, num_partitions: int) -> RangePartitioner:
        ordered = polars_to_arrow(self.spec.apply(arrow_to_polars(sample)))
        if ordered.num_rows == 0 or num_partitions == 1:
            return RangePartitioner(self.spec, ordered.slice(0, 0))
        picks = sorted({int(ordered.num_rows * i / num_partitions) for i in range(1, num_partitions)})
        return RangePartitioner(self.spec, ordered.take(pa.array(picks, pa.int64())))

    def assign(self, table, num_partitions):
        boundaries = self.boundaries
        if boundaries is None or boundaries.num_rows == 0:
            return [(0, table)] if table.num_rows else []
        return split_by_partition(table, self.partition_ids(table), boundaries.num_rows + 1)

    def partition_ids(self, table: pa.Table) -> np.ndarray:
        """Each row's partition: how many boundaries come before it in the sort order (a row tied with
        a boundary goes before it)."""
        if len(self.spec.by) == 1:
            ids = _searched_ids(table.column(self.spec.by[0]), self.boundaries.column(0),
                                self.spec.descending[0], self.spec.nulls_last[0])
            if ids is not None:
                return ids
        return self._merged_ids(table)

    def _merged_ids(self, table: pa.Table) -> np.ndarray:
        """Any key columns: sort the rows with the boundaries (a boundary after the rows tied with it),
        and count the boundaries before each row."""
        keys = list(self.spec.by)
        rows = arrow_to_polars(table.select(keys)).with_columns(
            pl.lit(0, pl.Int8).alias("__marker"), pl.int_range(pl.len(), dtype=pl.Int64).alias("__row"))
        marks = arrow_to_polars(self.boundaries.select(keys)).with_columns(
            pl.lit(1, pl.Int8).alias("__marker"), pl.lit(-1, pl.Int64).alias("__row"))
        merged = pl.concat([rows, marks], how="vertical_relaxed").sort(
            keys + ["__marker"], descending=list(self.spec.descending) + [False],
            nulls_last=list(self.spec.nulls_last) + [False], maintain_order=True)
        merged = merged.with_columns(pl.col("__marker").cast(pl.Int64).cum_sum().alias("__partition"))
        placed = merged.filter(pl.col("__marker") == 0)
        ids = np.empty(table.num_rows, dtype=np.int64)
        ids[placed["__row"].to_numpy()] = placed["__partition"].to_numpy()
        return ids

    def describe(self):
        return f"range({self.spec.describe()})"


def _searched_ids(column: pa.ChunkedArray, bounds: pa.ChunkedArray, descending: bool,
                  nulls_last: bool) -> np.ndarray | None:
    """`RangePartitioner.partition_ids` for one integer, float or temporal key, by binary search in the
    boundaries: no sort of the block. None for other types. Ties, NaN (the largest float) and nulls
    land where the merging sort puts them."""
    kind = column.type
    if bounds.type != kind:  # a sample drawn from blocks of another type: the general path casts
        return None
    if pa.types.is_temporal(kind) and not pa.types.is_interval(kind):
        numeric = pa.int32() if kind.bit_width == 32 else pa.int64()
    elif pa.types.is_integer(kind) or kind in (pa.float32(), pa.float64()):
        numeric = kind
    else:
        return None
    values, bounds = (_one_array(c).view(numeric) for c in (column, bounds))
    null_bounds = bounds.null_count
    ordered = bounds.drop_null().to_numpy()  # in the sort's order
    if descending:
        ordered = ordered[::-1]
    keys = values.fill_null(0).to_numpy() if values.null_count else values.to_numpy()
    if descending:
        ids = len(ordered) - np.searchsorted(ordered, keys, side="right")
    else:
        ids = np.searchsorted(ordered, keys, side="left")
    ids = ids.astype(np.int64)
    if not nulls_last:
        ids += null_bounds  # null boundaries come first, before every value
    if values.null_count:
        ids[values.is_null().to_numpy(zero_copy_only=False)] = len(ordered) if nulls_last else 0
    return ids


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


# ---------------------------------------------------------------- map-side prepare steps

class Reduction:
    """How much partial aggregation has shrunk the blocks so far, across the tasks of one run."""

    def __init__(self):
        self.rows_in = 0
        self.rows_out = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # shipped to other processes (Ray tasks) as counts, without the lock
        return {"rows_in": self.rows_in, "rows_out": self.rows_out}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def add(self, rows_in: int, rows_out: int) -> None:
        with self._lock:
            self.rows_in += rows_in
            self.rows_out += rows_out

    @property
    def pays(self) -> bool:
        """Grouping pays while it more than halves the rows; judged once enough rows were seen."""
        return self.rows_in < PARTIAL_PROBE_ROWS or self.rows_out < self.rows_in * PARTIAL_MIN_REDUCTION


PARTIAL_PROBE_ROWS = 1_000_000
PARTIAL_MIN_REDUCTION = 0.5


@dataclass(frozen=True, eq=False)
class PartialAggregate(Operator):
    """Aggregate each block by the keys before the exchange. When grouping stops paying (nearly
    every key is distinct within a block), later blocks send each row as its own partial state:
    the same final result, without a group-by that saves nothing."""

    plan: AggregationPlan
    reduction: Reduction = field(default_factory=Reduction, compare=False, repr=False)
    name = "PartialAggregate"

    def apply(self, table):
        out, _ = self.after(None, table)
        return out

    def after(self, step, table: pa.Table) -> tuple[pa.Table, int]:
        """This aggregate over `table` after the PolarsStep `step` (None: none), in one Polars query:
        Polars pushes the projections into the aggregation instead of materializing them. Returns the
        partials and the rows that entered the aggregate (the step's output rows)."""
        frame = arrow_to_polars(table).lazy()
        if step is not None:
            frame = step.lazy(frame)
        if self.plan.keys and not self.reduction.pays:
            out = self._as_rows(frame).collect()
            return polars_to_arrow(out), out.height
        rows = "__sluice_rows"
        if self.plan.keys:
            out = frame.group_by(list(self.plan.keys)).agg(self.plan.partial() + [pl.len().alias(rows)]).collect()
            entered = int(out[rows].sum()) if out.height else 0
            self.reduction.add(entered, out.height)
        else:
            out = frame.select(self.plan.partial() + [pl.len().alias(rows)]).collect()
            entered = int(out[rows][0])
            if entered == 0:
                out = out.clear()  # an empty block has no rows to summarize (first() must not see a null)
        return polars_to_arrow(out.drop(rows)), entered

    def _as_rows(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        keys = list(self.plan.keys)
        grouped = frame.clear().group_by(keys).agg(self.plan.partial())  # the schema partials have
        rows = frame.select([pl.col(k) for k in keys] + self.plan.row_partials())
        return rows.cast(dict(grouped.collect_schema()))

    def describe(self):
        return f"partial aggregate by [{', '.join(self.plan.keys)}]"


@dataclass(frozen=True, eq=False)
class BlockDistinct(Operator):
    subset: tuple[str, ...] | None
    keep: str
    name = "Distinct"

    def apply(self, table):
        subset = list(self.subset) if self.subset else None
        return polars_to_arrow(arrow_to_polars(table).unique(subset=subset, keep=self.keep, maintain_order=True))

    def describe(self):
        return f"distinct keep={self.keep}"


@dataclass(frozen=True, eq=False)
class BlockTopK(Operator):
    spec: SortSpec
    n: int
    name = "TopK"

    def apply(self, table):
        return polars_to_arrow(self.spec.apply(arrow_to_polars(table)).head(self.n))

    def describe(self):
        return f"top {self.n} by [{self.spec.describe()}]"


# ---------------------------------------------------------------- reducers

class Reducer:
    """Turns one partition group (one concatenated table per shuffle input) into a block."""

    name = "Reduce"

    def reduce(self, inputs: list[pa.Table]) -> pa.Table:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class FinalAggregate(Reducer):
    plan: AggregationPlan
    name = "FinalAggregate"

    def reduce(self, inputs):
        frame = arrow_to_polars(inputs[0])
        exprs = self.plan.final() if self.plan.two_phase else self.plan.single()
        out = frame.group_by(list(self.plan.keys)).agg(exprs) if self.plan.keys else frame.select(exprs)
        return polars_to_arrow(out)

    def describe(self):
        phase = "merge partials" if self.plan.two_phase else "aggregate raw rows"
        return f"final aggregate by [{', '.join(self.plan.keys)}] ({phase})"


@dataclass(frozen=True, eq=False)
class DistinctReducer(Reducer):
    subset: tuple[str, ...] | None
    keep: str
    name = "Distinct"

    def reduce(self, inputs):
        return BlockDistinct(self.subset, self.keep).apply(inputs[0])


@dataclass(frozen=True, eq=False)
class SortReducer(Reducer):
    spec: SortSpec
    limit: int | None = None
    name = "Sort"

    def reduce(self, inputs):
        frame = self.spec.apply(arrow_to_polars(inputs[0]))
        return polars_to_arrow(frame if self.limit is None else frame.head(self.limit))

    def describe(self):
        return f"sort [{self.spec.describe()}]" + (f" limit {self.limit}" if self.limit is not None else "")


@dataclass(frozen=True, eq=False)
class JoinReducer(Reducer):
    node: Join
    name = "Join"

    def reduce(self, inputs):
        left, right = inputs
        node = self.node
        joined = join_frames(arrow_to_polars(left), arrow_to_polars(right), node.left_on, node.right_on,
                             node.how, node.suffix)
        return polars_to_arrow(joined).select(node.schema.names)

    def describe(self):
        return self.node.label()


@dataclass(frozen=True, eq=False)
class WindowReducer(Reducer):
    """All rows of each window partition arrive in one task; sort them and add the window columns.

    `steps` holds (spec, functions) pairs that share partition columns, applied in order.
    """

    steps: tuple[tuple[Any, tuple], ...]  # (sluice.kernels.window.WindowSpec, aliased functions)
    name = "Window"

    def reduce(self, inputs):
        from ..kernels.window import apply_window
        frame = arrow_to_polars(inputs[0])
        for spec, functions in self.steps:
            frame = apply_window(frame, spec, functions)
        return polars_to_arrow(frame)

    def describe(self):
        return "window " + "; then ".join(spec.describe() for spec, _ in self.steps)


@dataclass(frozen=True, eq=False)
class ConcatReducer(Reducer):
    name = "Repartition"

    def reduce(self, inputs):
        return inputs[0]

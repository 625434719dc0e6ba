"""Plan nodes that reshape rows: number them, sample them, explode list columns, unpivot columns.

They live apart from logical.py, which holds the relational core, because they change the number
or the shape of rows in ways the core rules (pushdown, pruning) must treat with care: a row index
and a sample depend on the order and the number of rows below them, so no filter or limit may move
beneath them; an explode or an unpivot reads its own columns. Each node checks its arguments
against the input schema when it is built, so a mistake surfaces on the line that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import polars as pl
import pyarrow as pa

from ..errors import ExpressionTypeError, PlanError, column_not_found, format_schema
from ..expr.types import arrow_to_polars, polars_to_arrow
from .logical import LogicalNode, SingleInputNode

SAMPLE_ROW_COLUMN = "__sluice_sample_row"  # the hidden row number a sample hashes, dropped after it


def _require(names, schema: pa.Schema, context: str) -> None:
    for name in names:
        if name not in schema.names:
            raise column_not_found(name, schema, context)


def _inferred(compute, schema: pa.Schema, context: str) -> pa.Schema:
    """Run `compute` on an empty frame of `schema`: Polars gives the output types, or the error."""
    try:
        return polars_to_arrow(compute(arrow_to_polars(schema.empty_table()))).schema
    except pl.exceptions.PolarsError as exc:
        raise ExpressionTypeError(f"Cannot compute {context}: {str(exc).splitlines()[0]}\n"
                                  f"  The input has these columns:\n{format_schema(schema)}") from None


@dataclass(frozen=True, eq=False)
class RowIndex(SingleInputNode):
    """Prepend an int64 column numbering rows from `offset` in the order the input streams them."""

    input: LogicalNode
    name: str = "index"
    offset: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise PlanError(f"with_row_index() needs a column name, got {self.name!r}.")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise PlanError(f"with_row_index(offset=...) needs a non-negative integer, got {self.offset!r}.")
        schema = self.input.schema
        if schema is not None and self.name in schema.names:
            raise PlanError(f"with_row_index(): the input already has a column {self.name!r}. "
                            f"Pick another name, e.g. with_row_index(name='row_nr').")

    @cached_property
    def schema(self) -> pa.Schema | None:
        schema = self.input.schema
        return None if schema is None else schema.insert(0, pa.field(self.name, pa.int64()))

    def label(self):
        return f"RowIndex {self.name} from {self.offset}"


@dataclass(frozen=True, eq=False)
class Sample(SingleInputNode):
    """Keep each row with probability `fraction`, decided by a hash of (seed, the row's position in the
    input's order): the same rows for a seed on every run and runner, however rows fall into blocks."""

    input: LogicalNode
    fraction: float
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) or not (
                0 <= self.fraction <= 1):
            raise PlanError(f"sample() needs a fraction between 0 and 1, got {self.fraction!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise PlanError(f"sample(seed=...) needs an integer, got {self.seed!r}.")

    @cached_property
    def schema(self):
        return self.input.schema

    def label(self):
        return f"Sample {self.fraction:g} seed={self.seed}"


def _is_list(type_: pa.DataType) -> bool:
    return pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_)


@dataclass(frozen=True, eq=False)
class Explode(SingleInputNode):
    """One row per element of the list `columns`; several columns explode together and need equal lengths
    per row. An empty list (`empty_as_null`) and a null list (`keep_nulls`) each give one row with a null by
    default, so no input row disappears; with both False it is DuckDB's UNNEST, which drops those rows."""

    input: LogicalNode
    columns: tuple[str, ...]
    empty_as_null: bool = True
    keep_nulls: bool = True

    def apply(self, frame):
        """The explode of a Polars DataFrame or LazyFrame."""
        return frame.explode(list(self.columns), empty_as_null=self.empty_as_null, keep_nulls=self.keep_nulls)

    def __post_init__(self):
        if not self.columns:
            raise PlanError("explode() needs at least one list column, e.g. explode('tags').")
        schema = self.input.schema
        if schema is None:
            return
        _require(self.columns, schema, "explode()")
        for name in self.columns:
            if not _is_list(schema.field(name).type):
                raise PlanError(f"explode(): column {name!r} is {schema.field(name).type}, not a list. "
                                f"Only list columns explode; split a string first, e.g. col({name!r}).str.split(',').")

    @cached_property
    def schema(self) -> pa.Schema | None:
        schema = self.input.schema
        if schema is None:
            return None
        return _inferred(self.apply, schema, "explode()")

    def label(self):
        dropped = [what for what, kept in (("empty", self.empty_as_null), ("null", self.keep_nulls)) if not kept]
        return f"Explode [{', '.join(self.columns)}]" + (f" dropping {' and '.join(dropped)} lists" if dropped else "")


@dataclass(frozen=True, eq=False)
class Unpivot(SingleInputNode):
    """Wide to long: for each input row and each `on` column, a row of the `index` columns, the column's name
    (`variable_name`) and its value (`value_name`). Within a block, rows come column by column."""

    input: LogicalNode
    on: tuple[str, ...]
    index: tuple[str, ...]
    variable_name: str = "variable"
    value_name: str = "value"

    def __post_init__(self):
        if not self.on:
            raise PlanError("unpivot() has no columns to unpivot: every column is an index column. "
                            "Name the columns with on=[...].")
        if self.variable_name == self.value_name:
            raise PlanError(f"unpivot(): variable_name and value_name are both {self.value_name!r}. "
                            f"Give them different names.")
        clash = sorted({self.variable_name, self.value_name} & set(self.index))
        if clash:
            raise PlanError(f"unpivot(): index column(s) {clash} have the name of the output's variable or value "
                            f"column. Pass variable_name=/value_name= to rename those.")
        overlap = sorted(set(self.on) & set(self.index))
        if overlap:
            raise PlanError(f"unpivot(): {overlap} are both in on= and index=. A column is one or the other.")
        schema = self.input.schema
        if schema is not None:
            _require(self.on, schema, "unpivot(on=...)")
            _require(self.index, schema, "unpivot(index=...)")

    def apply(self, frame, carried: tuple[str, ...] = ()):
        """The unpivot of a Polars DataFrame or LazyFrame (`carried`: columns kept per row, like the index)."""
        return frame.unpivot(on=list(self.on), index=list(self.index) + list(carried),
                             variable_name=self.variable_name, value_name=self.value_name)

    @cached_property
    def schema(self) -> pa.Schema | None:
        schema = self.input.schema
        if schema is None:
            return None
        return _inferred(self.apply, schema, "unpivot() (the `on` columns need a common type; cast them first)")

    def label(self):
        index = f" index=[{', '.join(self.index)}]" if self.index else ""
        return f"Unpivot on=[{', '.join(self.on)}]{index} -> ({self.variable_name}, {self.value_name})"


RESHAPE_NODES: tuple[type[LogicalNode], ...] = (RowIndex, Sample, Explode, Unpivot)

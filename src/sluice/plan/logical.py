"""Logical plan nodes: what the user asked for, independent of how it runs.

Nodes are frozen dataclasses. A `Dataset` method builds a new node over the old one, and
optimizer rules return new trees; nothing is mutated in place. Each node knows its output
schema, computed without reading data (except `MapBatches`, whose output schema is learned
by calling the function on an empty batch, or is unknown until it runs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import pyarrow as pa

from ..errors import ExpressionTypeError, PlanError, format_schema
from ..expr import Expr, to_polars
from ..typecheck import check_expression
from ..types import arrow_to_polars, normalize_schema, polars_to_arrow


class LogicalNode:
    """Base of all plan nodes. Equality is structural, for golden tests of optimizer rules."""

    @property
    def children(self) -> tuple[LogicalNode, ...]:
        return ()

    def with_children(self, children: tuple[LogicalNode, ...]) -> LogicalNode:
        return self

    @property
    def schema(self) -> pa.Schema | None:
        raise NotImplementedError

    def label(self) -> str:
        """One line describing this node alone, for explain()."""
        return type(self).__name__

    def key(self) -> tuple:
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.metadata.get("ignore_in_key"):
                continue
            parts.append(_key_of(getattr(self, f.name)))
        return (type(self).__name__, tuple(parts))

    def __eq__(self, other):
        return isinstance(other, LogicalNode) and self.key() == other.key()

    def __hash__(self):
        return hash(repr(self.key()))

    def tree_string(self, indent: int = 0) -> str:
        lines = ["  " * indent + self.label()]
        lines += [child.tree_string(indent + 1) for child in self.children]
        return "\n".join(lines)


class SingleInputNode(LogicalNode):
    """A node over exactly one input, held in its `input` field."""

    input: LogicalNode

    @property
    def children(self) -> tuple[LogicalNode, ...]:
        return (self.input,)

    def with_children(self, children):
        return dataclasses.replace(self, input=children[0])


def _key_of(value):
    if isinstance(value, Expr):
        return value.key()
    if isinstance(value, LogicalNode):
        return value.key()
    if isinstance(value, tuple):
        return tuple(_key_of(v) for v in value)
    if isinstance(value, pa.Schema):
        return str(value)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return ("id", id(value))


def _exprs_text(exprs) -> str:
    return ", ".join(repr(e) for e in exprs)


@dataclass(frozen=True, eq=False)
class Scan(LogicalNode):
    """Read a source. Rules push column pruning, predicates and limits into it."""

    source: Any  # sluice.io.source.Source
    columns: tuple[str, ...] | None = None
    predicates: tuple[Expr, ...] = ()
    limit: int | None = None

    @cached_property
    def schema(self) -> pa.Schema:
        """The source's columns, typed as blocks carry them once read (see types.normalize_schema)."""
        full = self.source.schema
        if self.columns is not None:
            full = pa.schema([full.field(name) for name in self.columns])
        return normalize_schema(full)

    def label(self) -> str:
        parts = [self.source.describe()]
        if self.columns is not None:
            parts.append(f"columns=[{', '.join(self.columns)}]")
        if self.predicates:
            parts.append(f"filters=[{_exprs_text(self.predicates)}]")
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        return f"Scan {' '.join(parts)}"


@dataclass(frozen=True, eq=False)
class Filter(SingleInputNode):
    input: LogicalNode
    predicate: Expr

    def __post_init__(self):
        schema = self.input.schema
        if schema is not None:
            kind = check_expression(self.predicate, schema, "in filter()")
            if kind not in ("boolean", "null", "other"):
                raise ExpressionTypeError(
                    f"filter() needs a boolean condition, but `{self.predicate!r}` is {kind}. "
                    f"Compare it to something, e.g. `{self.predicate!r} > 0`."
                )

    @cached_property
    def schema(self): return self.input.schema

    def label(self): return f"Filter {self.predicate!r}"


@dataclass(frozen=True, eq=False)
class Project(SingleInputNode):
    """Compute exactly these output columns; select, with_columns, rename and drop build it."""

    input: LogicalNode
    exprs: tuple[Expr, ...]

    def __post_init__(self):
        names = [e.output_name() for e in self.exprs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PlanError(
                f"The projection would produce duplicate column names {duplicates}. "
                f"Give each expression a distinct name with .alias('new_name')."
            )
        schema = self.input.schema
        if schema is not None:
            for expr in self.exprs:
                check_expression(expr, schema, "in select()/with_columns()")

    @cached_property
    def schema(self) -> pa.Schema | None:
        schema = self.input.schema
        if schema is None:
            return None
        return infer_projection_schema(schema, self.exprs)

    def label(self): return f"Project [{_exprs_text(self.exprs)}]"


def infer_projection_schema(schema: pa.Schema, exprs: tuple[Expr, ...]) -> pa.Schema:
    """Run the projection on an empty frame: Polars gives the exact output types, or the type error."""
    try:
        frame = arrow_to_polars(schema.empty_table()).lazy().select([to_polars(e) for e in exprs]).collect()
    except Exception as exc:  # Polars reports type misuse the checker did not catch
        raise ExpressionTypeError(
            f"Cannot compute [{_exprs_text(exprs)}]: {str(exc).splitlines()[0]}\n"
            f"  The input has these columns:\n{format_schema(schema)}"
        ) from None
    return polars_to_arrow(frame).schema


@dataclass(frozen=True, eq=False)
class MapBatches(SingleInputNode):
    input: LogicalNode
    fn: Callable
    batch_format: str = "arrow"
    batch_size: int | None = None
    fn_kwargs: tuple[tuple[str, Any], ...] = ()
    declared_schema: pa.Schema | None = None

    @property
    def fn_name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or type(self.fn).__name__

    @cached_property
    def schema(self) -> pa.Schema | None:
        if self.declared_schema is not None:
            return self.declared_schema
        input_schema = self.input.schema
        if input_schema is None:
            return None
        from .operators import call_udf_on_empty
        return call_udf_on_empty(self, input_schema)

    def label(self):
        size = f", batch_size={self.batch_size}" if self.batch_size else ""
        return f"MapBatches {self.fn_name} (format={self.batch_format}{size})"


@dataclass(frozen=True, eq=False)
class Limit(SingleInputNode):
    input: LogicalNode
    n: int

    @cached_property
    def schema(self): return self.input.schema

    def label(self): return f"Limit {self.n}"


@dataclass(frozen=True, eq=False)
class Union(LogicalNode):
    """Concatenate inputs with the same columns; the first input's column order wins."""

    inputs: tuple[LogicalNode, ...]

    @property
    def children(self): return self.inputs
    def with_children(self, children): return dataclasses.replace(self, inputs=tuple(children))

    @cached_property
    def schema(self): return self.inputs[0].schema

    def label(self): return f"Union ({len(self.inputs)} inputs)"


@dataclass(frozen=True, eq=False)
class Write(SingleInputNode):
    """Write the input to a sink; the root of a write plan."""

    input: LogicalNode
    sink: Any  # sluice.io.sinks.Sink

    @cached_property
    def schema(self): return self.input.schema

    def label(self): return f"Write {self.sink.describe()}"


def transform_up(node: LogicalNode, fn: Callable[[LogicalNode], LogicalNode]) -> LogicalNode:
    """Rebuild the tree bottom-up, replacing each node by `fn(node)`."""
    children = node.children
    if children:
        new_children = tuple(transform_up(c, fn) for c in children)
        if any(n is not o for n, o in zip(new_children, children)):
            node = node.with_children(new_children)
    return fn(node)


def transform_down(node: LogicalNode, fn: Callable[[LogicalNode], LogicalNode]) -> LogicalNode:
    """Replace each node by `fn(node)` top-down, then recurse into the result's children."""
    node = fn(node)
    children = node.children
    if children:
        new_children = tuple(transform_down(c, fn) for c in children)
        if any(n is not o for n, o in zip(new_children, children)):
            node = node.with_children(new_children)
    return node

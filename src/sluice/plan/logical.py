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

import polars as pl
import pyarrow as pa

from ..errors import ExpressionTypeError, PlanError, column_not_found, format_schema
from ..expr.compile import to_polars
from ..expr.tree import Expr
from ..expr.typecheck import check_expression
from ..expr.types import arrow_to_polars, normalize_schema, polars_to_arrow
from ..kernels import user_code
from ..kernels.sort_keys import could_pack, packed_key
from ..kernels.udf import output_schema_on_empty


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
        return self._key

    @cached_property
    def _key(self) -> tuple:  # a node is immutable, and the optimizer compares plans after every pass
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
        return normalize_schema(full, strict=self.columns is not None)

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


# Output schemas by (input schema, what the node computes): optimizer rules rebuild nodes over
# the same inputs many times, and each inference runs a Polars query on an empty frame.
_INFERRED: dict[tuple, pa.Schema] = {}
_INFERRED_MAX = 4096


def _remembered(key: tuple, infer: Callable[[], pa.Schema]) -> pa.Schema:
    schema = _INFERRED.get(key)
    if schema is None:
        schema = infer()
        if len(_INFERRED) >= _INFERRED_MAX:
            _INFERRED.clear()
        _INFERRED[key] = schema
    return schema


def infer_projection_schema(schema: pa.Schema, exprs: tuple[Expr, ...]) -> pa.Schema:
    """Run the projection on an empty frame: Polars gives the exact output types, or the type error."""
    return _remembered(("project", schema, tuple(e.key() for e in exprs)),
                       lambda: _infer_projection_schema(schema, exprs))


def _infer_projection_schema(schema: pa.Schema, exprs: tuple[Expr, ...]) -> pa.Schema:
    try:
        frame = arrow_to_polars(schema.empty_table()).lazy().select([to_polars(e) for e in exprs]).collect()
    except Exception as exc:  # Polars reports type misuse the checker did not catch
        raise ExpressionTypeError(
            f"Cannot compute [{_exprs_text(exprs)}]: {str(exc).splitlines()[0]}\n"
            f"  The input has these columns:\n{format_schema(schema)}"
        ) from None
    return polars_to_arrow(frame).schema


@dataclass(frozen=True)
class UdfOptions:
    """Where and how wide a map_batches function runs (see Dataset.map_batches)."""

    compute: str = "processes"  # "processes": worker processes; "threads": the engine's thread pool
    concurrency: int | tuple[int, int] | None = None  # workers; (min, max) autoscales on queue depth
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None  # bytes one task needs; else learned from earlier runs
    max_tasks_in_flight: int = 2  # per worker
    constructor_args: tuple = ()
    constructor_kwargs: tuple[tuple[str, Any], ...] = ()

    def describe(self) -> str:
        parts = [self.compute]
        if self.concurrency is not None:
            parts.append(f"concurrency={self.concurrency}")
        if self.num_gpus:
            parts.append(f"num_gpus={self.num_gpus:g}")
        if self.memory is not None:
            parts.append(f"memory={self.memory}")
        return ", ".join(parts)


@dataclass(frozen=True, eq=False)
class MapBatches(SingleInputNode):
    input: LogicalNode
    fn: Callable
    batch_format: str = "arrow"
    batch_size: int | None = None
    fn_kwargs: tuple[tuple[str, Any], ...] = ()
    declared_schema: pa.Schema | None = None
    options: UdfOptions = UdfOptions()
    rows: str = "same"  # "same": the function returns one row per input row (checked); "any": it may not

    def __post_init__(self):
        if self.rows not in ("same", "any"):
            raise PlanError(f"map_batches(rows={self.rows!r}): use 'same' (one output row per input row, checked) "
                            f"or 'any' (the function may filter or expand rows).")

    @property
    def fn_name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or type(self.fn).__name__

    @property
    def is_class(self) -> bool:
        return isinstance(self.fn, type)

    @cached_property
    def schema(self) -> pa.Schema | None:
        if self.declared_schema is not None:
            return self.declared_schema
        input_schema = self.input.schema
        if input_schema is None or self.is_class:
            return None  # a class's schema is learned when its workers run (or pass schema=)
        return output_schema_on_empty(self.fn, input_schema, self.batch_format, dict(self.fn_kwargs), self.fn_name)

    def label(self):
        size = f", batch_size={self.batch_size}" if self.batch_size else ""
        rows = ", rows=any" if self.rows == "any" else ""
        return f"MapBatches {self.fn_name} (format={self.batch_format}{size}{rows}; {self.options.describe()})"

    def __reduce__(self):
        """The function travels through user_code (its file name and source lines kept), whoever pickles
        the node: a Ray task's spec, a run's saved plan, a repro."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "fn"}
        return rebuild_map_batches, (user_code.dumps(self.fn), fields, self.__dict__.get("schema"))


def rebuild_map_batches(pickled_fn: bytes, fields: dict, schema: pa.Schema | None) -> MapBatches:
    node = MapBatches(fn=user_code.loads(pickled_fn), **fields)
    if schema is not None:
        node.__dict__["schema"] = schema  # learned by calling the function once; not again in every process
    return node


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


@dataclass(frozen=True, eq=False)
class Aggregate(SingleInputNode):
    """group_by(keys).agg(aggs); with no keys, one row over the whole input."""

    input: LogicalNode
    keys: tuple[str, ...]
    aggs: tuple[Expr, ...]

    def __post_init__(self):
        from ..kernels.aggregates import aggregation_of
        if not self.aggs:
            raise PlanError("agg() needs at least one aggregation, e.g. agg(total=col('x').sum()).")
        names = list(self.keys) + [e.output_name() for e in self.aggs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PlanError(f"agg() would produce duplicate column names {duplicates}. Name each aggregation, "
                            f"e.g. agg(total=col('x').sum(), average=col('x').mean()).")
        schema = self.input.schema
        for expr in self.aggs:
            aggregation = aggregation_of(expr)
            if schema is not None and aggregation.arg is not None:
                check_expression(aggregation.arg, schema, "in agg()")
        if schema is not None:
            _require_columns(self.keys, schema, "group_by()")

    @cached_property
    def plan(self):
        from ..kernels.aggregates import plan_aggregation
        return plan_aggregation(self.keys, self.aggs)

    @cached_property
    def schema(self) -> pa.Schema | None:
        schema = self.input.schema
        if schema is None:
            return None
        def infer() -> pa.Schema:
            frame = arrow_to_polars(schema.empty_table())
            return _polars_schema(lambda: frame.group_by(list(self.keys)).agg(self.plan.single()) if self.keys
                                  else frame.select(self.plan.single()), schema, "agg()")

        return _remembered(("agg", schema, self.keys, tuple(e.key() for e in self.aggs)), infer)

    def label(self):
        keys = f"keys=[{', '.join(self.keys)}] " if self.keys else ""
        return f"Aggregate {keys}aggs=[{_exprs_text(self.aggs)}]"


@dataclass(frozen=True, eq=False)
class Join(LogicalNode):
    left: LogicalNode
    right: LogicalNode
    left_on: tuple[str, ...]
    right_on: tuple[str, ...]
    how: str = "inner"
    suffix: str = "_right"
    strategy: str = "auto"

    def __post_init__(self):
        from ..kernels.joins import JOIN_TYPES, STRATEGIES
        if self.how not in JOIN_TYPES:
            raise PlanError(f"how={self.how!r} is not a join type. Use one of {', '.join(JOIN_TYPES)}.")
        if self.strategy not in STRATEGIES:
            raise PlanError(f"strategy={self.strategy!r} is not a join strategy. Use one of {', '.join(STRATEGIES)}.")
        if self.how == "cross" and (self.left_on or self.right_on):
            raise PlanError("A cross join takes no keys. Remove on=/left_on=/right_on=, or use another join type.")
        if self.how != "cross" and not self.left_on:
            raise PlanError("join() needs keys: on='id', or left_on=... and right_on=... (or how='cross').")
        if len(self.left_on) != len(self.right_on):
            raise PlanError(f"left_on has {len(self.left_on)} columns but right_on has {len(self.right_on)}. "
                            f"Give one right key per left key.")
        left, right = self.left.schema, self.right.schema
        if left is not None:
            _require_columns(self.left_on, left, "join() left_on")
        if right is not None:
            _require_columns(self.right_on, right, "join() right_on")
        if left is not None and right is not None:
            from ..expr.typecheck import kind_of_type
            for lk, rk in zip(self.left_on, self.right_on):
                lt, rt = left.field(lk).type, right.field(rk).type
                if kind_of_type(lt) != kind_of_type(rt) or (lt != rt and kind_of_type(lt) != "numeric"):
                    raise PlanError(f"Join keys {lk!r} ({lt}) and {rk!r} ({rt}) have different types. "
                                    f"Cast one side first, e.g. col({rk!r}).cast('{lt}').")

    @property
    def children(self): return (self.left, self.right)
    def with_children(self, children): return dataclasses.replace(self, left=children[0], right=children[1])

    @cached_property
    def schema(self) -> pa.Schema | None:
        from ..kernels.joins import join_frames
        left, right = self.left.schema, self.right.schema
        if left is None or right is None:
            return None
        def infer() -> pa.Schema:
            lf, rf = arrow_to_polars(left.empty_table()), arrow_to_polars(right.empty_table())
            return _polars_schema(lambda: join_frames(lf, rf, self.left_on, self.right_on, self.how, self.suffix),
                                  left, "join()")

        return _remembered(("join", left, right, self.left_on, self.right_on, self.how, self.suffix), infer)

    def label(self):
        if self.how == "cross":
            return f"Join cross strategy={self.strategy}"
        keys = ", ".join(f"{lk}={rk}" if lk != rk else lk for lk, rk in zip(self.left_on, self.right_on))
        return f"Join {self.how} on [{keys}] strategy={self.strategy}"


@dataclass(frozen=True, eq=False)
class Distinct(SingleInputNode):
    input: LogicalNode
    subset: tuple[str, ...] | None = None
    keep: str = "any"

    def __post_init__(self):
        if self.keep not in ("any", "first", "last"):
            raise PlanError(f"keep={self.keep!r}: use 'any', 'first' or 'last'.")
        if self.subset is not None and self.input.schema is not None:
            _require_columns(self.subset, self.input.schema, "distinct(subset=...)")

    @cached_property
    def schema(self): return self.input.schema

    def label(self):
        subset = f" subset=[{', '.join(self.subset)}]" if self.subset else ""
        return f"Distinct{subset} keep={self.keep}"


@dataclass(frozen=True, eq=False)
class SortSpec:
    by: tuple[str, ...]
    descending: tuple[bool, ...]
    nulls_last: tuple[bool, ...]

    def describe(self) -> str:
        return ", ".join(f"{b} {'desc' if d else 'asc'}{' nulls last' if n else ''}"
                         for b, d, n in zip(self.by, self.descending, self.nulls_last))

    def apply(self, frame):
        """Sort a Polars DataFrame or LazyFrame, keeping ties in input order. A DataFrame sorted on
        integer columns is sorted on one packed key where their ranges allow (sort_keys.py)."""
        if isinstance(frame, pl.DataFrame):
            key = packed_key(frame, self.by, self.descending)
            if key is not None:
                return frame.sort(key, maintain_order=True)
        return frame.sort(list(self.by), descending=list(self.descending), nulls_last=list(self.nulls_last),
                          maintain_order=True)

    def packable(self, schema) -> bool:
        """Whether the key columns' types (a Polars schema) could pack into one key."""
        return could_pack(schema, self.by)


@dataclass(frozen=True, eq=False)
class Sort(SingleInputNode):
    input: LogicalNode
    spec: SortSpec

    def __post_init__(self):
        if self.input.schema is not None:
            _require_columns(self.spec.by, self.input.schema, "sort()")

    @cached_property
    def schema(self): return self.input.schema

    def label(self): return f"Sort [{self.spec.describe()}]"


@dataclass(frozen=True, eq=False)
class TopK(SingleInputNode):
    """Sort then limit, fused: each block keeps its best n rows, then one task picks the n best."""

    input: LogicalNode
    spec: SortSpec
    n: int

    @cached_property
    def schema(self): return self.input.schema

    def label(self): return f"TopK {self.n} [{self.spec.describe()}]"


@dataclass(frozen=True, eq=False)
class Repartition(SingleInputNode):
    input: LogicalNode
    n: int
    by: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.n < 1:
            raise PlanError(f"repartition() needs at least 1 partition, got {self.n}.")
        if self.by and self.input.schema is not None:
            _require_columns(self.by, self.input.schema, "repartition(by=...)")

    @cached_property
    def schema(self): return self.input.schema

    def label(self):
        return f"Repartition {self.n}" + (f" by [{', '.join(self.by)}]" if self.by else " round-robin")


@dataclass(frozen=True, eq=False)
class Window(SingleInputNode):
    """Add window-function columns, each computed over its row's partition in `spec`'s order."""

    input: LogicalNode
    spec: Any  # sluice.kernels.window.WindowSpec
    functions: tuple[Expr, ...]  # each aliased to its output column

    def __post_init__(self):
        from ..kernels.window import check_window
        if self.input.schema is not None:
            check_window(self.spec, self.functions, self.input.schema)

    def key(self) -> tuple:
        spec = self.spec
        return ("Window", self.input.key(), (spec.partition_by, spec.order_by, spec.descending),
                tuple(f.key() for f in self.functions))

    @cached_property
    def schema(self) -> pa.Schema | None:
        from ..kernels.window import window_output_schema
        schema = self.input.schema
        return None if schema is None else window_output_schema(schema, self.spec, self.functions)

    def label(self):
        return f"Window {self.spec.describe()} [{_exprs_text(self.functions)}]"


def _require_columns(names, schema: pa.Schema, context: str) -> None:
    for name in names:
        if name not in schema.names:
            raise column_not_found(name, schema, context)


def _polars_schema(compute, input_schema: pa.Schema, context: str) -> pa.Schema:
    try:
        return polars_to_arrow(compute()).schema
    except pl.exceptions.PolarsError as exc:
        raise ExpressionTypeError(f"Cannot compute {context}: {str(exc).splitlines()[0]}\n"
                                  f"  The input has these columns:\n{format_schema(input_schema)}") from None


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

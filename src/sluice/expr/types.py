"""Data types: one place that maps user spellings, Arrow types and Polars types onto each other.

Users write `cast("int64")`, `cast(pa.int64())` or `cast(pl.Int64)`; blocks are Arrow; the
kernels are Polars. Schemas are always Arrow. The output schema of a Polars computation is
learned by running it on an empty frame, so a plan's schema is known without reading data.
"""

from __future__ import annotations

import functools
from typing import Callable

import polars as pl
import pyarrow as pa

from ..errors import ExpressionTypeError, PlanError

_NAMED_TYPES = {
    "bool": pa.bool_(), "boolean": pa.bool_(),
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
    "float32": pa.float32(), "float": pa.float64(), "float64": pa.float64(), "double": pa.float64(),
    "str": pa.large_string(), "string": pa.large_string(), "utf8": pa.large_string(),
    "binary": pa.large_binary(), "date": pa.date32(), "date32": pa.date32(),
    "timestamp": pa.timestamp("us"), "timestamp[us]": pa.timestamp("us"),
    "timestamp[ms]": pa.timestamp("ms"), "timestamp[ns]": pa.timestamp("ns"),
    "datetime": pa.timestamp("us"), "time": pa.time64("us"), "duration": pa.duration("us"),
}


def to_arrow_type(dtype) -> pa.DataType:
    """Accept a type name, an Arrow type, a Polars type or a Python type; return the Arrow type."""
    if isinstance(dtype, pa.DataType):
        return dtype
    if isinstance(dtype, str):
        key = dtype.strip().lower()
        if key in _NAMED_TYPES:
            return _NAMED_TYPES[key]
        if key.startswith("decimal(") and key.endswith(")"):
            precision, scale = (int(p) for p in key[8:-1].split(","))
            return pa.decimal128(precision, scale)
        raise ExpressionTypeError(
            f"Unknown type name {dtype!r}. Use one of: {', '.join(sorted(_NAMED_TYPES))}, "
            f"'decimal(p,s)', or a pyarrow type such as pa.int64()."
        )
    if dtype in (int, float, str, bool):
        return {int: pa.int64(), float: pa.float64(), str: pa.large_string(), bool: pa.bool_()}[dtype]
    try:
        empty = pl.Series("x", [], dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ExpressionTypeError(f"Cannot use {dtype!r} as a data type: {exc}") from None
    return empty.to_arrow().type


_FLAT_POLARS_TYPES = {
    pa.int8(): pl.Int8, pa.int16(): pl.Int16, pa.int32(): pl.Int32, pa.int64(): pl.Int64,
    pa.uint8(): pl.UInt8, pa.uint16(): pl.UInt16, pa.uint32(): pl.UInt32, pa.uint64(): pl.UInt64,
    pa.float32(): pl.Float32, pa.float64(): pl.Float64, pa.bool_(): pl.Boolean, pa.date32(): pl.Date,
    pa.string(): pl.String, pa.large_string(): pl.String, pa.string_view(): pl.String,
    pa.binary(): pl.Binary, pa.large_binary(): pl.Binary, pa.binary_view(): pl.Binary, pa.null(): pl.Null,
}


@functools.lru_cache(maxsize=1024)
def to_polars_type(dtype: pa.DataType) -> pl.DataType:
    """The Polars type of an Arrow type: from a table for the common flat ones (checked against
    Polars in tests/unit/test_types.py), else by asking Polars."""
    if dtype in _FLAT_POLARS_TYPES:
        return _FLAT_POLARS_TYPES[dtype]
    if pa.types.is_decimal128(dtype):
        return pl.Decimal(dtype.precision, dtype.scale)
    if pa.types.is_timestamp(dtype) and dtype.unit != "s":
        return pl.Datetime(dtype.unit, dtype.tz)
    return pl.from_arrow(pa.array([], type=dtype)).dtype  # type: ignore[union-attr]


def arrow_to_polars(table: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    try:
        return pl.from_arrow(table, rechunk=False)  # type: ignore[return-value]
    except BaseException as exc:  # Polars panics (a BaseException) on a type it has no equivalent for
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or not any(_polars_lacks(f.type) for f in table.schema):
            raise
        normalize_schema(table.schema)  # raises the PlanError that names the columns
        raise


SMALL_VIEW_BYTES = 8 << 20  # string/binary views up to this size are cast in the calling thread


def polars_to_arrow(frame: pl.DataFrame) -> pa.Table:
    """The frame as Arrow, with large_string/large_binary where Polars holds string/binary views.

    Polars' own conversion to those layouts runs on its global thread pool: fast for big
    frames (a column per pool thread), but a small frame's conversion waits there behind the
    queries other threads have running (6 ms instead of 1 per 200k-row block in a cold 2-core
    run). So small top-level view columns are exported as they are (zero-copy) and cast by
    pyarrow in the calling thread; big ones, and nested types holding views, go to Polars.
    """
    table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    if not any(_has_views(dtype) for dtype in table.schema.types):
        return table
    if sum(column.nbytes for column in table.columns if _has_views(column.type)) > SMALL_VIEW_BYTES:
        return frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    columns, fields = [], []
    for index, field in enumerate(table.schema):
        column = table.column(index)
        if pa.types.is_string_view(field.type) or pa.types.is_binary_view(field.type):
            column = column.cast(_without_views(field.type))
            field = field.with_type(column.type)
        elif _has_views(field.type):
            converted = frame.select(pl.nth(index)).to_arrow(compat_level=pl.CompatLevel.oldest())
            column, field = converted.column(0), converted.schema.field(0)
        columns.append(column)
        fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


@functools.lru_cache(maxsize=256)
def _has_views(dtype: pa.DataType) -> bool:
    """Whether the type holds a string, binary or list view anywhere inside it."""
    return _anywhere_in(dtype, lambda t: pa.types.is_string_view(t) or pa.types.is_binary_view(t)
                        or pa.types.is_list_view(t) or pa.types.is_large_list_view(t))


def _anywhere_in(dtype: pa.DataType, test: Callable[[pa.DataType], bool]) -> bool:
    """Whether `test` holds for the type or for any type nested in it (items, fields, keys, values)."""
    if test(dtype):
        return True
    if pa.types.is_struct(dtype):
        children = [field.type for field in dtype]
    elif pa.types.is_map(dtype):
        children = [dtype.key_type, dtype.item_type]
    elif hasattr(dtype, "value_type"):  # lists of every kind, dictionaries
        children = [dtype.value_type]
    else:
        children = []
    return any(_anywhere_in(child, test) for child in children)


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def normalize_schema(schema: pa.Schema, *, strict: bool = True) -> pa.Schema:
    """The schema a block has after it passes through Polars (strings become large_string...).

    A column of a type Polars has no equivalent for (decimals wider than 38 digits, intervals)
    raises a PlanError naming it; with strict=False it keeps its type, for a scan's full schema,
    where such a column is fine as long as the plan never reads it.
    """
    normalized, unsupported = _normalized(schema)
    if unsupported and strict:
        raise PlanError(
            f"sluice cannot process the type of column(s) {', '.join(f'{f.name!r} ({f.type})' for f in unsupported)}: "
            f"its kernels (Polars) have no equivalent. Leave the column(s) out (columns= or select), or cast them "
            f"in the source, e.g. decimals wider than 38 digits to float64 or string, intervals to a string.")
    return normalized


@functools.lru_cache(maxsize=256)
def _normalized(schema: pa.Schema) -> tuple[pa.Schema, tuple[pa.Field, ...]]:
    # Polars drops metadata, which is all that pa.Schema's equality ignores: equal keys, equal results
    types = [_flat_normalized(field.type) for field in schema]
    if all(t is not None for t in types):
        return pa.schema([pa.field(field.name, t) for field, t in zip(schema, types)]), ()
    if not any(_polars_lacks(field.type) for field in schema):
        return polars_to_arrow(arrow_to_polars(empty_table(schema))).schema, ()
    fields = [field if _polars_lacks(field.type) else _normalized(pa.schema([field]))[0].field(0) for field in schema]
    return pa.schema(fields), tuple(field for field in schema if _polars_lacks(field.type))


def _polars_lacks(dtype: pa.DataType) -> bool:
    """Types Polars cannot hold (converting them panics inside Polars), alone or nested."""
    return _anywhere_in(dtype, lambda t: pa.types.is_interval(t) or (pa.types.is_decimal(t) and t.precision > 38))


def _flat_normalized(dtype: pa.DataType) -> pa.DataType | None:
    """What a Polars round trip makes of a flat type, without the round trip (the first one in a
    process costs milliseconds); None for the types left to Polars (nested, dictionary, ...).
    tests/unit/test_types.py checks every answer here against the round trip."""
    if (pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)
            or pa.types.is_date32(dtype) or pa.types.is_null(dtype) or pa.types.is_decimal128(dtype)):
        return dtype
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.large_string()
    if (pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype)
            or pa.types.is_fixed_size_binary(dtype)):
        return pa.large_binary()
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("ms" if dtype.unit == "s" else dtype.unit, dtype.tz)
    if pa.types.is_date64(dtype):
        return pa.timestamp("ms")
    if pa.types.is_time(dtype):
        return pa.time64("ns")
    if pa.types.is_duration(dtype):
        return pa.duration("ms" if dtype.unit == "s" else dtype.unit)
    return None


def _without_views(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_string_view(dtype):
        return pa.large_string()
    if pa.types.is_binary_view(dtype):
        return pa.large_binary()
    if pa.types.is_list_view(dtype) or pa.types.is_large_list_view(dtype):
        return pa.large_list(_without_views(dtype.value_type))
    if pa.types.is_struct(dtype):
        return pa.struct([f.with_type(_without_views(f.type)) for f in dtype])
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return pa.large_list(_without_views(dtype.value_type)) if pa.types.is_large_list(dtype) else pa.list_(
            _without_views(dtype.value_type))
    if pa.types.is_fixed_size_list(dtype):
        return pa.list_(_without_views(dtype.value_type), dtype.list_size)
    if pa.types.is_map(dtype):
        return pa.map_(_without_views(dtype.key_type), _without_views(dtype.item_type))
    return dtype


def without_view_types(schema: pa.Schema) -> pa.Schema:
    """Replace string/binary/list views, which many Arrow kernels lack, by their large forms."""
    return pa.schema([f.with_type(_without_views(f.type)) for f in schema], metadata=schema.metadata)


def _with_small_offsets(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype):
        return pa.binary()
    if pa.types.is_large_list(dtype) or pa.types.is_list(dtype):
        return pa.list_(dtype.value_field.with_type(_with_small_offsets(dtype.value_type)))
    if pa.types.is_struct(dtype):
        return pa.struct([f.with_type(_with_small_offsets(f.type)) for f in dtype])
    if pa.types.is_map(dtype):
        return pa.map_(_with_small_offsets(dtype.key_type), _with_small_offsets(dtype.item_type))
    return dtype


def with_small_offsets(table: pa.Table) -> pa.Table:
    """`table` with string, binary and list columns in their 32-bit-offset forms where the data fits, as files
    written by most tools hold them: blocks use the large forms (Polars' types), which other readers would
    otherwise get back from sluice's files."""
    schema = pa.schema([f.with_type(_with_small_offsets(f.type)) for f in table.schema], metadata=table.schema.metadata)
    if schema == table.schema:
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return table  # over 2 GiB of values in one chunk: the large forms it needs


def narrowest_column(schema: pa.Schema) -> str:
    """The cheapest column to read when only row counts matter (fixed width, fewest bytes)."""
    def width(field):
        try:
            return field.type.bit_width
        except ValueError:
            return 1 << 20
    return min(schema, key=width).name

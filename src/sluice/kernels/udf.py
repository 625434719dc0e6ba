"""Calling user functions on blocks: batch formats in and out, and checking what comes back.

A `map_batches` function sees its batch as Arrow, pandas, Polars or a dict of NumPy arrays,
and may return any of those. Whatever it returns is turned back into an Arrow table, or
rejected with an error that names the function and what was wrong. When user code raises,
its traceback is kept with sluice's own frames trimmed, so the user's line is on top.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from ..errors import PlanError, UdfOutputError, UserCodeError

BATCH_FORMATS = ("arrow", "pandas", "polars", "numpy")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # src/sluice


def to_batch_format(table: pa.Table, batch_format: str) -> Any:
    if batch_format == "arrow":
        return table
    if batch_format == "pandas":
        return table.to_pandas()
    if batch_format == "polars":
        from ..expr.types import arrow_to_polars  # Polars only where asked for: UDF workers start without it
        return arrow_to_polars(table)
    if batch_format == "numpy":
        return {name: column.to_numpy(zero_copy_only=False) for name, column in zip(table.column_names, table.columns)}
    raise UdfOutputError(f"batch_format={batch_format!r} is not supported. Use one of {BATCH_FORMATS}.")


def from_batch_output(result: Any, fn_name: str) -> pa.Table:
    """Turn what a UDF returned into an Arrow table, or explain why it cannot be one."""
    if isinstance(result, pa.Table):
        return result
    if isinstance(result, pa.RecordBatch):
        return pa.Table.from_batches([result])
    polars = sys.modules.get("polars")  # a Polars DataFrame means polars is imported
    if polars is not None and isinstance(result, polars.DataFrame):
        from ..expr.types import polars_to_arrow
        return polars_to_arrow(result)
    if isinstance(result, dict):
        return _table_from_dict(result, fn_name)
    if type(result).__name__ == "DataFrame" and hasattr(result, "to_numpy") and hasattr(result, "columns"):
        return pa.Table.from_pandas(result, preserve_index=False)
    raise UdfOutputError(
        f"map_batches function {fn_name} returned {type(result).__name__}, which is not a batch. "
        f"Return a pyarrow.Table, a pandas or Polars DataFrame, or a dict of equal-length arrays."
    )


def _table_from_dict(result: dict, fn_name: str) -> pa.Table:
    lengths = {}
    for name, values in result.items():
        try:
            lengths[name] = len(values)
        except TypeError:
            raise UdfOutputError(
                f"map_batches function {fn_name} returned a dict whose column {name!r} is a "
                f"{type(values).__name__}, not an array. Return arrays or lists for every column."
            ) from None
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name!r}: {n} rows" for name, n in lengths.items())
        raise UdfOutputError(
            f"map_batches function {fn_name} returned columns of different lengths ({described}). "
            f"Every column of a batch must have the same number of rows."
        )
    return pa.table({name: np.asarray(v) if isinstance(v, list) and not v else v for name, v in result.items()})


def trim_internal_frames(exc: BaseException) -> BaseException:
    """Drop the leading traceback frames that belong to sluice, so user code comes first."""
    tb = exc.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return exc.with_traceback(tb) if tb is not None else exc


def call_user_function(fn: Callable, batch: Any, kwargs: dict, fn_name: str, where: str) -> Any:
    try:
        return fn(batch, **kwargs)
    except Exception as exc:
        cause = trim_internal_frames(exc)
        raise UserCodeError(
            f"map_batches function {fn_name} raised {type(exc).__name__}: {exc}\n  while processing {where}.\n"
            f"  The function's own traceback is shown above."
        ) from cause


def apply_function(fn: Callable, table: pa.Table, batch_format: str, kwargs: dict, fn_name: str) -> pa.Table:
    """Call a map_batches function on one block in this process: batch format in, an Arrow table out."""
    batch = to_batch_format(table, batch_format)
    result = call_user_function(fn, batch, kwargs, fn_name, f"a block of {table.num_rows} rows")
    return from_batch_output(result, fn_name)


def output_schema_on_empty(fn: Callable, input_schema: pa.Schema, batch_format: str, kwargs: dict,
                           fn_name: str) -> pa.Schema | None:
    """Learn a function's output schema by calling it on a zero-row batch; None if that fails."""
    try:
        return apply_function(fn, input_schema.empty_table(), batch_format, kwargs, fn_name).schema
    except UdfOutputError:
        raise
    except Exception:
        return None


def parse_concurrency(concurrency: int | tuple[int, int] | None, default: int) -> tuple[int, int]:
    """n -> (n, n); (min, max) -> (min, max); None -> (default, default)."""
    if concurrency is None:
        return default, default
    if isinstance(concurrency, bool):
        raise PlanError(f"concurrency must be a number of workers or a (min, max) pair, got {concurrency!r}.")
    if isinstance(concurrency, int):
        low = high = concurrency
    elif isinstance(concurrency, (tuple, list)) and len(concurrency) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in concurrency):
        low, high = concurrency
    else:
        raise PlanError(f"concurrency must be a number of workers or a (min, max) pair, got {concurrency!r}.")
    if low < 1 or high < low:
        raise PlanError(f"concurrency needs 1 <= min <= max, got {concurrency!r}.")
    return low, high


def check_udf_arguments(fn, batch_format: str, batch_size: int | None, constructor_args, constructor_kwargs) -> bool:
    """Plan-time checks of map_batches arguments; returns whether `fn` is a class (an actor)."""
    from ..errors import PlanError
    if not callable(fn):
        raise PlanError(f"map_batches() needs a function or a callable class, got {fn!r}.")
    if batch_format not in BATCH_FORMATS:
        raise PlanError(f"batch_format={batch_format!r} is not supported. Use one of {', '.join(BATCH_FORMATS)}.")
    if batch_size is not None and batch_size < 1:
        raise PlanError(f"batch_size must be a positive number of rows, got {batch_size}.")
    is_class = isinstance(fn, type)
    if not is_class and (constructor_args or constructor_kwargs):
        raise PlanError("fn_constructor_args and fn_constructor_kwargs apply only when map_batches gets a class.")
    return is_class

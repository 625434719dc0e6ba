"""Column types for a CSV file when a few of its sampled lines do not fit them.

Arrow infers for each column the narrowest type that every sampled value fits, so one stray
value (`notanumber` among integers, `soon` among timestamps) makes the column a string, and the
mistake surfaces far away, as a type error in a join. Here a column that Arrow could only call
text is given instead the type that all but a few of its sampled values fit, and the lines holding
those few become bad records when the file is read (reliability/quarantine.py), as any line that
does not fit a given schema does.

"A few" is the error budget: the misfit lines of all columns together must stay within what
`max_bad_records` allows for the sampled lines, and within each column at most 1% of its values.
Under on_error="raise" no bad record is allowed, so every sampled value must fit, as in Arrow.
Whether a value fits a type is decided by Arrow's CSV converter itself, over groups of values
split 16 ways while they fail (as reliability/quarantine.py isolates bad rows), so the type chosen
here is one the reader will then apply the same way.
"""

from __future__ import annotations

from typing import Sequence

import pyarrow as pa
import pyarrow.csv as pacsv

from .. import config

# Arrow's own order of preference; a value fitting several (12: int64 and float64) takes the first.
CANDIDATE_TYPES = (pa.int64(), pa.bool_(), pa.date32(), pa.time32("s"), pa.timestamp("s"), pa.timestamp("ns"),
                   pa.timestamp("s", "UTC"), pa.timestamp("ns", "UTC"), pa.float64())
MOST = 0.99  # the type of a column must fit at least this share of its sampled values
PROBE = 256  # values tried first, spread over the sample, to rule a type out cheaply
FANOUT = 16
# No value of a candidate type holds these; such a value cannot fit (and would break the one-column CSV).
NEVER_IN_A_FIT = (b'"', b"\n", b"\r")


def allowed_misfits(sampled_rows: int) -> int:
    """How many sampled lines the error budget lets inference leave to the dead letters."""
    settings = config.current()
    if settings.on_error == "raise":
        return 0
    limit = settings.max_bad_records
    return int(limit) if isinstance(limit, int) else int(limit * sampled_rows)


def majority_schema(inferred: pa.Schema, cells: pa.RecordBatch | None, null_values: Sequence[str] | None
                    ) -> pa.Schema:
    """`inferred` (Arrow's guess) with each text column given the type most of its `cells` fit.

    `cells` holds the sampled lines as Arrow read them for the guess, every column as binary (null
    where Arrow saw a null value). A column that stays text is a string column, never binary: CSV
    is text, and invalid UTF-8 in it is a bad line, not a reason to hand every value over as bytes.
    """
    allowance = allowed_misfits(cells.num_rows) if cells is not None else 0
    misfit_rows: set[int] = set()
    fields = []
    for field in inferred:
        type_ = field.type
        if cells is not None and allowance and _is_text(type_):
            chosen = _majority_type(cells.column(field.name), allowance, null_values)
            if chosen is not None and len(misfit_rows.union(chosen[1])) <= allowance:
                type_ = chosen[0]
                misfit_rows.update(chosen[1])
        if pa.types.is_binary(type_):
            type_ = pa.string()
        elif pa.types.is_large_binary(type_):
            type_ = pa.large_string()
        fields.append(field.with_type(type_))
    return pa.schema(fields, metadata=inferred.metadata)


def _is_text(type_: pa.DataType) -> bool:
    return (pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_binary(type_)
            or pa.types.is_large_binary(type_))


def _majority_type(column: pa.Array, allowance: int, null_values: Sequence[str] | None
                   ) -> tuple[pa.DataType, list[int]] | None:
    """The candidate type with the fewest misfits among the column's values, and the rows of those
    misfits, when they are within `allowance` and 1% of the values; else None."""
    values, rows = [], []
    for row, value in enumerate(column.to_pylist()):
        if value is not None:
            values.append(value)
            rows.append(row)
    if not values:
        return None
    limit = min(allowance, int(len(values) * (1 - MOST)))
    if limit <= 0:
        return None
    best: tuple[pa.DataType, list[int]] | None = None
    for type_ in CANDIDATE_TYPES:
        cap = limit if best is None else len(best[1]) - 1
        if cap < 0:
            break
        if len(values) > 4 * PROBE:
            stride = len(values) // PROBE
            probe = values[::stride]
            if _misfits(probe, list(range(len(probe))), type_, max(cap * len(probe) // len(values), 8),
                        null_values) is None:
                continue
        misfits = _misfits(values, rows, type_, cap, null_values)
        if misfits is not None:
            best = (type_, misfits)
    return best


def _misfits(values: list[bytes], rows: list[int], type_: pa.DataType, limit: int,
             null_values: Sequence[str] | None) -> list[int] | None:
    """The rows whose value Arrow's CSV reader does not convert to `type_`; None when over `limit`."""
    options = pacsv.ConvertOptions(column_types={"v": type_},
                                   **({"null_values": list(null_values)} if null_values is not None else {}))
    found = [row for row, value in zip(rows, values) if not _may_fit(value)]
    if len(found) > limit:
        return None
    candidates = [(row, value) for row, value in zip(rows, values) if _may_fit(value)]

    def fits(i: int, j: int) -> bool:
        body = b"v\n" + b"\n".join(value for _, value in candidates[i:j]) + b"\n"
        read_options = pacsv.ReadOptions(use_threads=False, block_size=max(1 << 20, len(body) + 1))
        try:
            return pacsv.read_csv(pa.BufferReader(body), read_options=read_options,
                                  convert_options=options).num_rows == j - i
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return False

    def visit(i: int, j: int) -> bool:
        """False once more than `limit` misfits are found."""
        if fits(i, j):
            return True
        if j - i == 1:
            found.append(candidates[i][0])
            return len(found) <= limit
        size = -(-(j - i) // FANOUT)
        return all(visit(start, min(start + size, j)) for start in range(i, j, size))

    if candidates and not visit(0, len(candidates)):
        return None
    return sorted(found)


def _may_fit(value: bytes) -> bool:
    """False for a value no candidate type can hold: empty (and not a null value), or holding a quote or
    a line break (which would also break the one-column CSV the converter is given)."""
    return bool(value) and not any(byte in value for byte in NEVER_IN_A_FIT)

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

from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .. import config

# Arrow's own order of preference; a value fitting several (12: int64 and float64) takes the first.
CANDIDATE_TYPES = (pa.int64(), pa.bool_(), pa.date32(), pa.time32("s"), pa.timestamp("s"), pa.timestamp("ns"),
                   pa.timestamp("s", "UTC"), pa.timestamp("ns", "UTC"), pa.float64())
# A wider candidate that holds every value of a narrower one, and may fit values the probe did not see.
WIDER = {pa.int64(): (pa.float64(),), pa.date32(): (pa.timestamp("s"), pa.timestamp("ns")),
         pa.timestamp("s"): (pa.timestamp("ns"),), pa.timestamp("s", "UTC"): (pa.timestamp("ns", "UTC"),)}
MOST = 0.99  # the type of a column must fit at least this share of its sampled values
FANOUT = 16
# Before counting misfits, Arrow infers the types of groups of values spread over the column, all in
# one small CSV: the candidates worth counting are those, and a column with more text groups than
# this is text.
PROBE_GROUPS, PROBE_GROUP, PROBE_TEXT_GROUPS = 16, 16, 3
# No value of a candidate type holds these (and they would break the small CSVs the converter is given).
NEVER_IN_A_FIT = '["\r\n,]'


def allowed_misfits(sampled_rows: int) -> int:
    """How many sampled lines the error budget lets inference leave to the dead letters."""
    settings = config.current()
    if settings.on_error == "raise":
        return 0
    limit = settings.max_bad_records
    return int(limit) if isinstance(limit, int) else int(limit * sampled_rows)


def majority_schema(inferred: pa.Schema, sampled_rows: int, read_cells: Callable[[], pa.RecordBatch],
                    null_values: Sequence[str] | None) -> pa.Schema:
    """`inferred` (Arrow's guess from `sampled_rows` lines) with each text column given the type most of
    its values fit.

    `read_cells()` gives those lines as Arrow read them for the guess, every column as binary (null
    where Arrow saw a null value). A column that stays text is a string column, never binary: CSV is
    text, and invalid UTF-8 in it is a bad line, not a reason to hand every value over as bytes.
    """
    allowance = allowed_misfits(sampled_rows) if sampled_rows else 0
    cells = read_cells() if allowance and any(_is_text(type_) for type_ in inferred.types) else None
    misfit_rows: set[int] = set()
    fields = []
    for field in inferred:
        type_ = field.type
        if cells is not None and _is_text(type_):
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
    present = pc.is_valid(column)
    limit = min(allowance, int(pc.sum(present).as_py() * (1 - MOST)))
    if limit <= 0:
        return None
    may_fit = pc.and_(pc.greater(pc.binary_length(column), 0),
                      pc.invert(pc.match_substring_regex(column, NEVER_IN_A_FIT))).fill_null(False)
    unfit_rows = np.flatnonzero(pc.and_not(present, may_fit).to_numpy(zero_copy_only=False))
    if len(unfit_rows) > limit:
        return None
    values = column.filter(may_fit)
    plausible = _plausible_types(values, null_values)
    if not plausible:
        return None
    value_list = values.to_pylist()
    best: tuple[pa.DataType, list[int]] | None = None  # the type, and the indices of the values it misfits
    for type_ in CANDIDATE_TYPES:
        cap = limit - len(unfit_rows) if best is None else len(best[1]) - 1
        if cap < 0:
            break
        if type_ not in plausible:
            continue
        if best is not None and type_ in WIDER.get(best[0], ()):
            # it holds every value the best so far holds: only that one's misfits are in question
            still = _misfits([value_list[i] for i in best[1]], type_, cap, null_values)
            misfits = None if still is None else [best[1][i] for i in still]
        else:
            misfits = _misfits(value_list, type_, cap, null_values)
        if misfits is not None:
            best = (type_, misfits)
    if best is None:
        return None
    fit_rows = np.flatnonzero(may_fit.to_numpy(zero_copy_only=False))
    return best[0], sorted(unfit_rows.tolist() + fit_rows[best[1]].tolist())


def _plausible_types(values: pa.Array, null_values: Sequence[str] | None) -> set[pa.DataType]:
    """The candidate types (and their wider kin) Arrow infers for groups of values spread over the
    column; none when too many groups are text for the column to be mostly of one type."""
    if not len(values):
        return set()
    width = min(PROBE_GROUPS, len(values))
    height = min(PROBE_GROUP, len(values) // width)
    picks = np.linspace(0, len(values) - 1, width * height).astype(np.int64)
    cells = values.take(picks).to_pylist()
    grid = [b",".join(cells[r * width:(r + 1) * width]) for r in range(height)]  # group g: every width-th pick
    body = b",".join(b"c%d" % g for g in range(width)) + b"\n" + b"\n".join(grid) + b"\n"
    options = pacsv.ConvertOptions(**({"null_values": list(null_values)} if null_values is not None else {}))
    try:
        types = pacsv.read_csv(pa.BufferReader(body), read_options=pacsv.ReadOptions(use_threads=False),
                               convert_options=options).schema.types
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return set()
    if sum(type_ not in CANDIDATE_TYPES for type_ in types) > PROBE_TEXT_GROUPS:
        return set()
    found = {type_ for type_ in types if type_ in CANDIDATE_TYPES}
    return found.union(*(WIDER.get(type_, ()) for type_ in found))


def _misfits(values: list[bytes], type_: pa.DataType, limit: int, null_values: Sequence[str] | None
             ) -> list[int] | None:
    """The indices of the values Arrow's CSV reader does not convert to `type_`; None when over `limit`."""
    options = pacsv.ConvertOptions(column_types={"v": type_},
                                   **({"null_values": list(null_values)} if null_values is not None else {}))
    found: list[int] = []

    def fits(i: int, j: int) -> bool:
        body = b"v\n" + b"\n".join(values[i:j]) + b"\n"
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
            found.append(i)
            return len(found) <= limit
        size = -(-(j - i) // FANOUT)
        return all(visit(start, min(start + size, j)) for start in range(i, j, size))

    if values and not visit(0, len(values)):
        return None
    return found

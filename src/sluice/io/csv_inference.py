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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .. import config

# In Arrow's order of preference: the type with the fewest misfits wins, and on a tie (12 fits int64 and
# float64) the first.
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
NEVER_IN_A_FIT = '",\r\n'
NEVER_IN_A_FIT_BYTES = tuple(char.encode() for char in NEVER_IN_A_FIT)


def allowed_misfits(sampled_rows: int) -> int:
    """How many sampled lines the error budget lets inference leave to the dead letters."""
    settings = config.current()
    if settings.on_error == "raise":
        return 0
    limit = settings.max_bad_records
    return int(limit) if isinstance(limit, int) else int(limit * sampled_rows)


def majority_schema(guess: pa.Table, null_values: Sequence[str] | None) -> pa.Schema:
    """The schema of `guess` (Arrow's reading of the sampled lines) with each text column given the
    type most of its values fit.

    A column that stays text is a string column, never binary: CSV is text, and invalid UTF-8 in it
    is a bad line, not a reason to hand every value over as bytes.
    """
    allowance = allowed_misfits(guess.num_rows) if guess.num_rows else 0
    misfit_rows: set[int] = set()
    fields = []
    for field in guess.schema:
        type_ = field.type
        if allowance and _is_text(type_):
            chosen = _majority_type(_as_bytes(guess.column(field.name)), allowance, null_values)
            if chosen is not None and len(misfit_rows.union(chosen[1])) <= allowance:
                type_ = chosen[0]
                misfit_rows.update(chosen[1])
        if pa.types.is_binary(type_):
            type_ = pa.string()
        elif pa.types.is_large_binary(type_):
            type_ = pa.large_string()
        fields.append(field.with_type(type_))
    return pa.schema(fields, metadata=guess.schema.metadata)


def _is_text(type_: pa.DataType) -> bool:
    return (pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_binary(type_)
            or pa.types.is_large_binary(type_))


def _as_bytes(column: pa.ChunkedArray) -> pa.Array:
    """A text column's values as bytes (no copy), nulls where Arrow read a null value."""
    array = column.combine_chunks()
    if pa.types.is_string(array.type):
        return array.view(pa.binary())
    return array.view(pa.large_binary()) if pa.types.is_large_string(array.type) else array


def _majority_type(column: pa.Array, allowance: int, null_values: Sequence[str] | None
                   ) -> tuple[pa.DataType, list[int]] | None:
    """The candidate type with the fewest misfits among the column's values, and the rows of those
    misfits, when they are within `allowance` and 1% of the values; else None."""
    limit = min(allowance, int((len(column) - column.null_count) * (1 - MOST)))
    if limit <= 0:
        return None
    plausible = _plausible_types(column.drop_null(), null_values)
    if not plausible:
        return None
    may_fit = pc.and_(pc.greater(pc.binary_length(column), 0),
                      pc.invert(pc.match_substring_regex(column, f"[{NEVER_IN_A_FIT}]"))).fill_null(False)
    unfit_rows = np.flatnonzero(pc.and_not(pc.is_valid(column), may_fit).to_numpy(zero_copy_only=False))
    if len(unfit_rows) > limit:
        return None
    value_list = column.filter(may_fit).to_pylist()
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
    column; none when too many of those values or groups are text for the column to be mostly of one type."""
    picks = values.take(np.linspace(0, len(values) - 1, min(len(values), PROBE_GROUPS * PROBE_GROUP))
                        .astype(np.int64)).to_pylist()
    fitting = [value for value in picks if _may_fit(value)]
    if len(picks) - len(fitting) > PROBE_TEXT_GROUPS or not fitting:
        return set()
    width = min(PROBE_GROUPS, len(fitting))
    height = len(fitting) // width
    grid = [b",".join(fitting[r * width:(r + 1) * width]) for r in range(height)]  # group g: every width-th pick
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


def _may_fit(value: bytes) -> bool:
    """False for a value no candidate type holds: empty (and not a null value), or with a quote, a comma
    or a line break."""
    return bool(value) and not any(char in value for char in NEVER_IN_A_FIT_BYTES)


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

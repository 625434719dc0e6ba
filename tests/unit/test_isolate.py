"""Bisecting a failing block down to its bad rows, and knowing when to stop."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sluice.errors import UserCodeError
from sluice.reliability.quarantine import BROKEN_RUN, isolate


def _calls_and_apply(predicate):
    calls = []

    def apply(piece: pa.Table) -> pa.Table:
        calls.append(piece.num_rows)
        if predicate(piece):
            raise UserCodeError("bad row")
        return piece
    return calls, apply


def test_isolates_scattered_bad_rows_exactly():
    block = pa.table({"id": list(range(10_000))})
    bad_ids = {17, 4_000, 9_999}
    calls, apply = _calls_and_apply(lambda p: bool(set(p["id"].to_pylist()) & bad_ids))
    outputs, bad = isolate(apply, block, UserCodeError("first"))
    assert sorted(b.index for b in bad) == sorted(bad_ids)
    assert sum(t.num_rows for t in outputs) == 10_000 - len(bad_ids)
    assert len(calls) < 200  # a few calls per bad row, not one per row


def test_a_function_that_breaks_past_a_point_is_raised_not_bisected_row_by_row():
    block = pa.table({"id": list(range(200_000))})
    first = UserCodeError("broken from row 50,000 on")
    calls, apply = _calls_and_apply(lambda p: pc.max(p["id"]).as_py() >= 50_000)
    with pytest.raises(UserCodeError, match="broken from row") as raised:
        isolate(apply, block, first)
    assert raised.value is first
    assert len(calls) < 20 * BROKEN_RUN  # stopped after a run of failing rows, not 150,000 calls

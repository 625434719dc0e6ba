"""Join semantics, in one place: the Polars call every strategy and the schema use.

Keys never match nulls (SQL). Key columns are coalesced: inner, left and full joins keep the
left key names, a right join keeps the right key names. Other columns that appear on both
sides get `suffix` on the right side's copy. Semi and anti joins return left columns only.
Whatever strategy runs a join (broadcast, shuffle, a split skewed partition), it calls
`join_frames` on the logical left and right inputs, so results never depend on the strategy.
"""

from __future__ import annotations

import polars as pl

JOIN_TYPES = ("inner", "left", "right", "full", "semi", "anti", "cross")
STRATEGIES = ("auto", "broadcast", "shuffle")


def join_frames(left: pl.DataFrame, right: pl.DataFrame, left_on: tuple[str, ...], right_on: tuple[str, ...],
                how: str, suffix: str) -> pl.DataFrame:
    if how == "cross":
        return left.join(right, how="cross", suffix=suffix)
    return left.join(right, left_on=list(left_on), right_on=list(right_on), how=how, suffix=suffix,
                     coalesce=True, nulls_equal=False)


def preserved_sides(how: str) -> tuple[bool, bool]:
    """Whether unmatched rows of the (left, right) side appear in the output."""
    return {"inner": (False, False), "left": (True, False), "right": (False, True), "full": (True, True),
            "semi": (False, False), "anti": (True, False), "cross": (False, False)}[how]

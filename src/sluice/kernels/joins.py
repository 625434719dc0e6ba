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


def canonical_key(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A float key in a form where NaN equals NaN and -0.0 equals 0.0, as in SQL engines.

    Polars' own float equality in joins is not consistent for NaN (a one-row side never
    matches), so float keys join, and hash, on this exact round-trip text instead.
    """
    if dtype.is_float():
        return pl.when(expr.is_nan()).then(pl.lit("NaN")).when(expr == 0).then(pl.lit("0")).otherwise(
            expr.cast(pl.String))
    return expr


def _plain_join(left, right, left_on, right_on, how, suffix):
    return left.join(right, left_on=list(left_on), right_on=list(right_on), how=how, suffix=suffix,
                     coalesce=True, nulls_equal=False)


def _schema(frame: pl.DataFrame | pl.LazyFrame) -> pl.Schema:
    return frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema


def join_frames(left: pl.DataFrame, right: pl.DataFrame, left_on: tuple[str, ...], right_on: tuple[str, ...],
                how: str, suffix: str, float_keys: bool | None = None) -> pl.DataFrame:
    """Join two DataFrames, or two LazyFrames (in-memory fusion, plan/fusion.py). `float_keys`
    says whether any key is a float, when the caller knows: a LazyFrame's schema costs a plan walk."""
    if how == "cross":
        return left.join(right, how="cross", suffix=suffix)
    if float_keys is False:
        return _plain_join(left, right, left_on, right_on, how, suffix)
    left_schema, right_schema = _schema(left), _schema(right)
    floats = [i for i, (lk, rk) in enumerate(zip(left_on, right_on))
              if left_schema[lk].is_float() or right_schema[rk].is_float()]
    if not floats:
        return _plain_join(left, right, left_on, right_on, how, suffix)
    layout = _schema(_plain_join(left.clear(), right.clear(), left_on, right_on, how, suffix)).names()
    temp = {i: f"__sluice_float_key_{i}" for i in floats}
    left_keys = [temp.get(i, k) for i, k in enumerate(left_on)]
    right_keys = [temp.get(i, k) for i, k in enumerate(right_on)]
    left_t = left.with_columns(canonical_key(pl.col(left_on[i]), left_schema[left_on[i]]).alias(t)
                               for i, t in temp.items())
    right_t = right.with_columns(canonical_key(pl.col(right_on[i]), right_schema[right_on[i]]).alias(t)
                                 for i, t in temp.items())
    out = _plain_join(left_t, right_t, left_keys, right_keys, how, suffix)
    for i in floats:
        lk, rk = left_on[i], right_on[i]
        right_name = rk if rk not in left_schema else f"{rk}{suffix}"
        if how in ("semi", "anti"):
            continue
        if how == "right":
            out = out.drop(lk).rename({right_name: rk}) if right_name != rk else out.drop(lk)
        elif how == "full":
            out = out.with_columns(pl.coalesce(pl.col(lk), pl.col(right_name)).alias(lk)).drop(right_name)
        else:
            out = out.drop(right_name)
    return out.select(layout)


def preserved_sides(how: str) -> tuple[bool, bool]:
    """Whether unmatched rows of the (left, right) side appear in the output."""
    return {"inner": (False, False), "left": (True, False), "right": (False, True), "full": (True, True),
            "semi": (False, False), "anti": (True, False), "cross": (False, False)}[how]

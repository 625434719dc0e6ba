"""Two-level aggregation of a skewed partition whose aggregates are holistic.

Holistic aggregates (count_distinct, median, quantile) cannot merge partial results the
way sums can, so an aggregation that has one moves raw rows, and a hot key sends all of its
rows to one reduce task. When such a partition is skewed, the runner splits its rows into
slices by the aggregated value, so that the slices can be aggregated in parallel and merged
exactly:

- count_distinct slices by a hash of the value: equal values share a slice, so distinct
  counts per slice add up.
- median and quantile slice by ranges of the value (boundaries from a sample). Each slice
  counts its values per group; the counts say which slice holds each needed rank, and a
  second parallel pass picks the values at those ranks from their slices. The result is
  interpolated as Polars' `quantile(interpolation="linear")` does, exactly.
- the other aggregates of the same agg() run as partials per slice and merge as usual.

Rows with a null value (which holistic aggregates skip) still count for the others, and are
spread evenly over the slices. The
split applies when every holistic aggregate reads the same expression, and median/quantile
need a numeric one; otherwise `split_reason` says why not and the partition runs whole.
This module is runner-agnostic: the runner decides the slice count and runs the steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from ..expr.compile import to_polars
from ..expr.tree import Aggregation
from ..kernels.aggregates import HOLISTIC, AggregationPlan, final_form, partial_forms

VALUE, SLICE, COUNT, LOCAL_RANK, RANK_VALUE = "__hs_value", "__hs_slice", "__hs_count", "__hs_local", "__hs_at"
GLOBAL_RANK = "__hs_global"
RANKED = ("median", "quantile")
SAMPLE_ROWS = 10_000


def split_reason(plan: AggregationPlan, value_dtype: pl.DataType | None) -> str | None:
    """None when the skewed partition can be split, else why it cannot."""
    holistic = [a for a in plan.outputs if a.fn in HOLISTIC]
    if any(a.fn == "collect_list" for a in holistic):
        return "collect_list keeps input order, which slicing by value would change"
    if any(a.fn in ("first", "last") for a in plan.outputs):
        return "first/last follow input order, which slicing by value would change"
    if len({a.arg.key() for a in holistic}) > 1:
        return "its holistic aggregates read different columns"
    if any(a.fn in RANKED for a in holistic) and (value_dtype is None or not value_dtype.is_numeric()
                                                   or isinstance(value_dtype, pl.Decimal)):
        return "median/quantile are split by value ranges, which needs an integer or float value"
    return None


def holistic_value(plan: AggregationPlan) -> pl.Expr:
    return to_polars(next(a for a in plan.outputs if a.fn in HOLISTIC).arg)


@dataclass(frozen=True)
class SplitPlan:
    plan: AggregationPlan
    slices: int
    boundaries: pl.Series | None  # value-range boundaries when median/quantile are present

    @property
    def ranked(self) -> bool:
        return self.boundaries is not None


def plan_split(plan: AggregationPlan, frame: pl.DataFrame, slices: int) -> SplitPlan:
    if not any(a.fn in RANKED for a in plan.outputs):
        return SplitPlan(plan, slices, None)
    values = frame.select(holistic_value(plan)).to_series().drop_nulls()
    sample = values.sample(min(SAMPLE_ROWS, len(values)), seed=len(values)).sort() if len(values) else values
    picks = sorted({int(len(sample) * i / slices) for i in range(1, slices)})
    return SplitPlan(plan, slices, sample.gather(picks) if len(sample) else sample)


def assign_slices(split: SplitPlan, frame: pl.DataFrame) -> list[pl.DataFrame]:
    """The partition's rows with their value column, one frame per slice."""
    frame = frame.with_columns(holistic_value(split.plan).alias(VALUE))
    if split.ranked:
        ids = split.boundaries.search_sorted(frame[VALUE], side="right").cast(pl.Int64)
    else:
        ids = frame.select(pl.col(VALUE).hash(seed=0x5EED) % split.slices).to_series().cast(pl.Int64)
    # a null value counts only for the ordinary aggregates, so its row may go to any slice
    spread = pl.int_range(pl.len(), dtype=pl.Int64) % split.slices
    frame = frame.with_columns(pl.when(pl.col(VALUE).is_null()).then(spread).otherwise(ids).alias(SLICE))
    parts = frame.partition_by(SLICE, as_dict=True, include_key=False)
    return [parts[key] for key in sorted(parts)]  # in slice order: value ranges ascend


# ---------------------------------------------------------------- level 1: per slice

def slice_partials(split: SplitPlan, frame: pl.DataFrame) -> pl.DataFrame:
    """Per group: the ordinary partials, distinct counts, and (ranked) the count of values."""
    value = pl.col(VALUE)
    exprs = []
    for i, agg in enumerate(split.plan.outputs):
        if agg.fn == "count_distinct":
            exprs.append(value.drop_nulls().n_unique().cast(pl.Int64).alias(f"__p{i}_d"))
        elif agg.fn not in RANKED:
            exprs += [e.alias(f"__p{i}_{name}") for name, e in partial_forms(agg).items()]
    if split.ranked:
        exprs.append(value.count().cast(pl.Int64).alias(COUNT))
    return _group(frame, split.plan.keys, exprs)


def _group(frame: pl.DataFrame, keys, exprs) -> pl.DataFrame:
    return frame.group_by(list(keys), maintain_order=True).agg(exprs) if keys else frame.select(exprs)


# ---------------------------------------------------------------- ranks for median/quantile

def wanted_ranks(split: SplitPlan, partials: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """For each slice: the (group, local rank) pairs whose values the final step needs."""
    keys = list(split.plan.keys)
    counts = pl.concat([p.select(keys + [COUNT]).with_columns(pl.lit(i, pl.Int64).alias(SLICE))
                        for i, p in enumerate(partials)])
    counts = counts.sort(SLICE).with_columns(
        _per_group(pl.col(COUNT).cum_sum() - pl.col(COUNT), keys).alias("__hs_before"),
        _per_group(pl.col(COUNT).sum(), keys).alias("__hs_total"))
    ranks = set()
    for agg in split.plan.outputs:
        if agg.fn in RANKED:
            ranks.add(_q(agg))
    rows = []
    for q in sorted(ranks):
        position = q * (pl.col("__hs_total") - 1)
        for bound in (position.floor(), position.ceil()):
            rows.append(counts.filter((pl.col("__hs_total") > 0) & (bound >= pl.col("__hs_before"))
                                      & (bound < pl.col("__hs_before") + pl.col(COUNT)))
                        .select(keys + [SLICE, (bound - pl.col("__hs_before")).cast(pl.Int64).alias(LOCAL_RANK),
                                        bound.cast(pl.Int64).alias(GLOBAL_RANK)]))
    wanted = pl.concat(rows).unique()
    return [wanted.filter(pl.col(SLICE) == i).drop(SLICE) for i in range(len(partials))]


def _per_group(expr: pl.Expr, keys: list[str]) -> pl.Expr:
    return expr.over(keys) if keys else expr


def _q(agg: Aggregation) -> float:
    return 0.5 if agg.fn == "median" else agg.params[0]


def values_at_ranks(split: SplitPlan, frame: pl.DataFrame, wanted: pl.DataFrame) -> pl.DataFrame:
    """Level 2 for one slice: the values at the wanted local ranks of each group."""
    keys = list(split.plan.keys)
    if wanted.is_empty():
        return wanted.with_columns(pl.lit(None, frame.schema[VALUE]).alias(RANK_VALUE))
    ordered = frame.select(keys + [VALUE]).filter(pl.col(VALUE).is_not_null())
    if keys:
        ordered = ordered.join(wanted.select(keys).unique(), on=keys, how="semi", nulls_equal=True)
        ordered = ordered.sort(keys + [VALUE]).with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).over(keys).alias(LOCAL_RANK))
    else:
        ordered = ordered.sort(VALUE).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(LOCAL_RANK))
    picked = ordered.rename({VALUE: RANK_VALUE})
    return wanted.join(picked, on=keys + [LOCAL_RANK], how="left", nulls_equal=True)


# ---------------------------------------------------------------- merge

def merge(split: SplitPlan, partials: list[pl.DataFrame], picked: list[pl.DataFrame] | None,
          output_schema: pl.Schema) -> pl.DataFrame:
    """The partition's aggregate: ordinary partials merged, distinct counts summed, ranks interpolated."""
    plan, keys = split.plan, list(split.plan.keys)
    exprs = []
    for i, (agg, name) in enumerate(zip(plan.outputs, plan.names)):
        if agg.fn == "count_distinct":
            exprs.append(pl.col(f"__p{i}_d").sum().cast(pl.Int64).alias(name))
        elif agg.fn not in RANKED:
            exprs.append(final_form(agg, lambda part, i=i: pl.col(f"__p{i}_{part}")).alias(name))
    if split.ranked:
        exprs.append(pl.col(COUNT).sum().alias("__hs_total"))
    merged = _group(pl.concat(partials, how="diagonal_relaxed"), keys, exprs)
    if split.ranked:
        values = pl.concat([p for p in picked if not p.is_empty()] or [picked[0]], how="diagonal_relaxed")
        merged = _interpolate(split, merged, values)
    return merged.select(keys + list(plan.names)).cast(dict(output_schema))


def _interpolate(split: SplitPlan, merged: pl.DataFrame, values: pl.DataFrame) -> pl.DataFrame:
    """Linear interpolation between the values at floor and ceil of q * (n - 1), per group."""
    keys = list(split.plan.keys)
    by_rank = values.select(keys + [GLOBAL_RANK, pl.col(RANK_VALUE).cast(pl.Float64)]).unique(keys + [GLOBAL_RANK])
    for agg, name in zip(split.plan.outputs, split.plan.names):
        if agg.fn not in RANKED:
            continue
        position = _q(agg) * (pl.col("__hs_total") - 1)
        merged = merged.with_columns(position.floor().cast(pl.Int64).alias("__hs_lo"),
                                     position.ceil().cast(pl.Int64).alias("__hs_hi"),
                                     (position - position.floor()).alias("__hs_frac"))
        lo = by_rank.rename({GLOBAL_RANK: "__hs_lo", RANK_VALUE: "__hs_vlo"})
        hi = by_rank.rename({GLOBAL_RANK: "__hs_hi", RANK_VALUE: "__hs_vhi"})
        merged = (merged.join(lo, on=keys + ["__hs_lo"], how="left", nulls_equal=True)
                  .join(hi, on=keys + ["__hs_hi"], how="left", nulls_equal=True))
        between = pl.col("__hs_vlo") + pl.col("__hs_frac") * (pl.col("__hs_vhi") - pl.col("__hs_vlo"))
        exact = pl.when(pl.col("__hs_frac") == 0).then(pl.col("__hs_vlo")).otherwise(between)
        merged = merged.with_columns(pl.when(pl.col("__hs_total") > 0).then(exact).alias(name)).drop(
            ["__hs_lo", "__hs_hi", "__hs_frac", "__hs_vlo", "__hs_vhi"])
    return merged


def slice_count(rows: int, chunk_rows: int, threads: int) -> int:
    return max(2, min(256, max(threads, math.ceil(rows / max(1, chunk_rows)))))

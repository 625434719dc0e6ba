"""How each aggregate runs: in one pass, or split into a map-side partial and a final merge.

Aggregation is two-phase whenever every aggregate of a `group_by().agg()` decomposes: each
map task reduces its block to one row per group (partial columns), the exchange moves only
those rows, and the reduce side merges them. Sums and counts add up; means carry sum and
count; variance and standard deviation carry count, mean and M2 and merge them with Chan's
formula, so they stay numerically stable. Exact holistic aggregates (count_distinct, median,
quantile, collect_list) cannot be merged from partials, so a plan that has one moves raw rows.

Null semantics follow SQL: a sum, mean, min or max over no non-null values is null; counts
are zero; `count()` counts rows, `col(x).count()` counts non-null values.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ..errors import PlanError
from ..expr.compile import aggregate_argument, single_phase
from ..expr.tree import Aggregation, Expr, unalias

HOLISTIC = frozenset({"count_distinct", "median", "quantile", "collect_list"})
ORDER_SENSITIVE = frozenset({"first", "last", "collect_list"})


def aggregation_of(expr: Expr) -> Aggregation:
    """The Aggregation an agg() output is made of, or a PlanError saying what is wrong."""
    inner = unalias(expr)
    if not isinstance(inner, Aggregation):
        raise PlanError(
            f"agg() takes aggregations such as col('x').sum() or count(), got `{expr!r}`. "
            f"Compute derived values with with_columns() after agg()."
        )
    return inner


@dataclass(frozen=True)
class AggregationPlan:
    """The Polars expressions of both phases for one agg() call."""

    keys: tuple[str, ...]
    names: tuple[str, ...]
    outputs: tuple[Aggregation, ...]

    @property
    def two_phase(self) -> bool:
        return not any(a.fn in HOLISTIC for a in self.outputs)

    def single(self) -> list[pl.Expr]:
        return [single_phase(a).alias(n) for a, n in zip(self.outputs, self.names)]

    def partial(self) -> list[pl.Expr]:
        exprs = []
        for i, agg in enumerate(self.outputs):
            exprs += [e.alias(f"__p{i}_{name}") for name, e in partial_forms(agg).items()]
        return exprs

    def row_partials(self) -> list[pl.Expr]:
        """Each row as its own partial state: what partial() gives for a group of one row, without
        the group-by. For blocks where grouping barely reduces the rows (high-cardinality keys)."""
        exprs = []
        for i, agg in enumerate(self.outputs):
            exprs += [e.alias(f"__p{i}_{name}") for name, e in row_partial_forms(agg).items()]
        return exprs

    def final(self) -> list[pl.Expr]:
        return [final_form(agg, lambda part, i=i: pl.col(f"__p{i}_{part}")).alias(name)
                for i, (agg, name) in enumerate(zip(self.outputs, self.names))]


def plan_aggregation(keys: tuple[str, ...], aggs: tuple[Expr, ...]) -> AggregationPlan:
    return AggregationPlan(keys, tuple(e.output_name() for e in aggs), tuple(aggregation_of(e) for e in aggs))


def partial_forms(agg: Aggregation) -> dict[str, pl.Expr]:
    if agg.fn == "count_all":
        return {"n": pl.len().cast(pl.Int64)}
    x = aggregate_argument(agg)
    if agg.fn in ("sum", "mean"):
        return {"s": x.sum(), "c": x.count().cast(pl.Int64)}
    if agg.fn == "count":
        return {"c": x.count().cast(pl.Int64)}
    if agg.fn in ("std", "var"):
        return {"n": x.count().cast(pl.Int64), "m": x.cast(pl.Float64).mean(),
                "m2": ((x.cast(pl.Float64) - x.cast(pl.Float64).mean()) ** 2).sum()}
    return {"v": {"min": x.min, "max": x.max, "first": x.first, "last": x.last}[agg.fn]()}


def row_partial_forms(agg: Aggregation) -> dict[str, pl.Expr]:
    if agg.fn == "count_all":
        return {"n": pl.lit(1, pl.Int64)}
    x = aggregate_argument(agg)
    present = x.is_not_null().cast(pl.Int64)
    if agg.fn in ("sum", "mean"):
        return {"s": x, "c": present}
    if agg.fn == "count":
        return {"c": present}
    if agg.fn in ("std", "var"):
        return {"n": present, "m": x.cast(pl.Float64), "m2": pl.when(x.is_not_null()).then(pl.lit(0.0))}
    return {"v": x}


def final_form(agg: Aggregation, part) -> pl.Expr:
    fn = agg.fn
    if fn == "count_all":
        return part("n").sum().cast(pl.Int64)
    if fn == "count":
        return part("c").sum().cast(pl.Int64)
    if fn == "sum":
        return pl.when(part("c").sum() > 0).then(part("s").sum())
    if fn == "mean":
        return pl.when(part("c").sum() > 0).then(part("s").sum().cast(pl.Float64) / part("c").sum())
    if fn in ("std", "var"):
        n = part("n").sum()
        mean = (part("n") * part("m")).sum() / n
        m2 = part("m2").sum() + (part("n") * (part("m") - mean) ** 2).sum()
        variance = pl.when(n > 1).then(m2 / (n - 1))
        return variance.sqrt() if fn == "std" else variance
    if fn in ("min", "max"):
        return getattr(part("v"), fn)()
    if fn == "first":
        return part("v").first()
    return part("v").last()

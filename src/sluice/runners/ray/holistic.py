"""A skewed partition of a holistic aggregation, aggregated in two levels by Ray tasks.

Why this module exists: plan/holistic_split.py holds the runner-agnostic steps (slice by value,
per-slice partials, ranks, exact merge); these are the task bodies that run them where the
data is. The driver (exchange.py) chains them: `split_assign` slices the partition, one
`split_partials` task per slice, for median/quantile `split_wanted` and one `split_values`
task per slice, and the merge as a `run_task` of kind "merge" (so the stage's operators,
quarantine and exchange hand-off apply to its result as to any reduce task).
"""

from __future__ import annotations

import time

import polars as pl
import pyarrow as pa

from ...plan import holistic_split
from ...plan.adaptive import hot_keys
from ...types import arrow_to_polars, polars_to_arrow
from .cluster import worker_identity
from .tasks import ChainSpec, Report, measured


def split_assign(spec: ChainSpec, slices: int, *pieces) -> list:
    """The partition's rows cut into value slices: `slices` outputs (None past the last), split plan, schema."""
    plan = spec.reducer.plan
    report = Report(spec.stage_id, **worker_identity(), started=time.time())
    tables = [t for t in pieces if t is not None]
    table = pa.concat_tables(tables, promote_options="permissive") if tables else spec.input_schemas[0].empty_table()
    report.hot_keys = hot_keys(table, list(plan.keys), spec.stage_id)
    frame = arrow_to_polars(table)
    output_schema = frame.clear().group_by(list(plan.keys)).agg(plan.single()).schema
    split = holistic_split.plan_split(plan, frame, slices)
    parts = holistic_split.assign_slices(split, frame)
    report.slice_rows = [len(p) for p in parts]
    report.ended = time.time()
    return [*parts, *([None] * (slices - len(parts))), split, output_schema, report]


def split_partials(stage_id: int, split, frame: pl.DataFrame) -> list:
    report = Report(stage_id, **worker_identity(), started=time.time())
    partial = measured(report, stage_id, "SplitAggregate", 0, 0, lambda: holistic_split.slice_partials(split, frame),
                       len, lambda f: f.estimated_size())
    report.ended = time.time()
    return [partial, report]


def split_wanted(split, *partials) -> list:
    return holistic_split.wanted_ranks(split, list(partials))


def split_values(stage_id: int, split, frame: pl.DataFrame, wanted: pl.DataFrame) -> list:
    report = Report(stage_id, **worker_identity(), started=time.time())
    picked = measured(report, stage_id, "SplitRanks", 0, 0,
                      lambda: holistic_split.values_at_ranks(split, frame, wanted), len, lambda f: f.estimated_size())
    report.ended = time.time()
    return [picked, report]


def merge_block(payload, pieces: tuple) -> pa.Table:
    """The partition's aggregate from its slices' partials (and picked rank values)."""
    slices, ranked = payload
    split, output_schema = pieces[0], pieces[1]
    partials = list(pieces[2:2 + slices])
    picked = list(pieces[2 + slices:2 + 2 * slices]) if ranked else None
    return polars_to_arrow(holistic_split.merge(split, partials, picked, output_schema))

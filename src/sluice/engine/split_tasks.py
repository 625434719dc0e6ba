"""Task bodies besides the operator chain: a holistic split's steps and the hot keys of a partition.

Why this module exists: physical/holistic_split.py holds the steps of aggregating a skewed
partition in two levels (slice by value, per-slice partials, ranks, exact merge); these are
the task bodies that run them where the data is, on any backend (`Backend.call` by name). The
driver (exchange.py) chains them: `split_assign` slices the partition, one `split_partials`
task per slice, for median/quantile `split_wanted` and one `split_values` task per slice, and
the merge as a `run_task` of kind "merge" (task.merge_block) (so the stage's operators, quarantine and exchange
hand-off apply to its result as to any reduce task). `hot_keys_task` names a skewed join
partition's hot keys without bringing the partition to the driver.
"""

from __future__ import annotations

import time

import polars as pl
import pyarrow as pa

from ..expr.types import arrow_to_polars
from ..physical import holistic_split
from ..physical.adaptive import hot_keys
from .task import ChainSpec, Report, concat_or_empty, measured


def split_assign(spec: ChainSpec, slices: int, *pieces) -> list:
    """The partition's rows cut into value slices: `slices` outputs (None past the last), split plan, schema."""
    plan = spec.reducer.plan
    report = Report.started_now(spec.stage_id)
    table = concat_or_empty(list(pieces), spec.input_schemas[0])
    report.hot_keys = hot_keys(table, list(plan.keys), spec.stage_id)
    frame = arrow_to_polars(table)
    output_schema = frame.clear().group_by(list(plan.keys)).agg(plan.single()).schema
    split = holistic_split.plan_split(plan, frame, slices)
    parts = holistic_split.assign_slices(split, frame)
    report.slice_rows = [len(p) for p in parts]
    report.ended = time.time()
    return [*parts, *([None] * (slices - len(parts))), split, output_schema, report]


def split_partials(stage_id: int, split, frame: pl.DataFrame) -> list:
    report = Report.started_now(stage_id)
    partial = measured(report, stage_id, "SplitAggregate", 0, 0, lambda: holistic_split.slice_partials(split, frame),
                       len, lambda f: f.estimated_size())
    report.ended = time.time()
    return [partial, report]


def split_wanted(split, *partials) -> list:
    return holistic_split.wanted_ranks(split, list(partials))


def split_values(stage_id: int, split, frame: pl.DataFrame, wanted: pl.DataFrame) -> list:
    report = Report.started_now(stage_id)
    picked = measured(report, stage_id, "SplitRanks", 0, 0,
                      lambda: holistic_split.values_at_ranks(split, frame, wanted), len, lambda f: f.estimated_size())
    report.ended = time.time()
    return [picked, report]


def hot_keys_task(stage: int, keys: list[str], *pieces) -> list:
    tables = [t for t in pieces if t is not None]
    return [hot_keys(pa.concat_tables(tables, promote_options="permissive"), keys, stage) if tables else []]


TASK_BODIES = {fn.__name__: fn for fn in (split_assign, split_partials, split_wanted, split_values, hot_keys_task)}

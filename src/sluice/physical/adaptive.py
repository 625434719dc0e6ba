"""Adaptive exchange decisions, as pure functions of measured partition sizes, for every runner.

Why this module exists: once an exchange's map side is done, the engine knows each
partition's rows and bytes (from its map tasks' reports) and decides, without touching data,
how many partitions to cut, which adjacent small ones to coalesce into one reduce task,
which skewed ones to split, and how the reduce tasks are named in a resumable run's task
log. Keeping the decisions pure makes them testable alone (tests/unit/test_adaptive.py).
`hot_keys` names the keys that make a partition skewed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

DEFAULT_PARTITIONS = 64
MAX_PARTITIONS = 1024
SORT_WORK_FACTOR = 2  # a sort task holds its partition twice (input and sorted copy): make partitions smaller
HOT_KEY_SHARE = 10  # a key holding at least 1/10 of a skewed partition's rows is reported as hot
# a repartition (a join's collected build side, a sort's buffered input) re-splits the pieces of a map side
# joined up to this size: most of the gain of fewer, bigger pieces, for little more memory in flight
REPARTITION_BLOCK_BYTES = 8 << 20


def default_partitions(estimated_bytes: int, task_bytes: int, parallelism: int) -> int:
    """Partitions for an exchange whose input is estimated at `estimated_bytes`; coalescing trims them later."""
    wanted = math.ceil(estimated_bytes / max(1, task_bytes))
    return max(DEFAULT_PARTITIONS, 2 * parallelism, min(MAX_PARTITIONS, wanted))


def sort_partitions(total_bytes: int, task_bytes: int, parallelism: int) -> int:
    """Range partitions for a sort of `total_bytes`: one when it fits a task, else at least one per core."""
    wanted = math.ceil(total_bytes / max(1, task_bytes // SORT_WORK_FACTOR))
    return max(1, min(MAX_PARTITIONS, max(wanted, parallelism if wanted > 1 else 1)))


def consecutive_groups(items: Iterable[T], size: Callable[[T], int], target_bytes: int) -> Iterator[list[T]]:
    """Consecutive items joined into groups of about `target_bytes` (an item over it makes a group
    alone): splitting a piece costs a fixed overhead per piece it makes, so a repartition re-splits
    the small pieces of a map side a group at a time."""
    group: list[T] = []
    total = 0
    for item in items:
        if group and total + size(item) > target_bytes:
            yield group
            group, total = [], 0
        group.append(item)
        total += size(item)
    if group:
        yield group


def batches_of_at_least(items: Iterable[T], size: Callable[[T], int], target_bytes: int) -> Iterator[list[T]]:
    """Consecutive items joined into batches of at least `target_bytes` (the last may hold less), each
    batch handed on as soon as it is full: a stream of small blocks becomes fewer, larger tasks."""
    batch: list[T] = []
    total = 0
    for item in items:
        batch.append(item)
        total += size(item)
        if total >= target_bytes:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _skewed(probe_bytes: list[int], live: list[int], factor: float, min_bytes: int) -> set[int]:
    """Partitions over `factor` x the median size of the live ones, and over `min_bytes`."""
    typical = median([probe_bytes[p] for p in live])
    return {p for p in live if probe_bytes[p] > factor * typical and probe_bytes[p] > min_bytes}


def coalesce(live: list[int], sizes: list[int], target: int, exclude: set[int] = frozenset()) -> list[tuple[int, ...]]:
    """Adjacent live partitions grouped into reduce tasks of about `target` bytes, in partition order."""
    kept = [p for p in live if p not in exclude]
    return [tuple(group) for group in consecutive_groups(kept, sizes.__getitem__, target)]


def slices(rows: list[int], chunk_rows: int) -> list[list[tuple[int, int, int]]]:
    """Cut a sequence of pieces (their row counts) into slices of about `chunk_rows` rows.

    Each slice lists (piece index, first row in that piece, rows), so a task reads only the
    pieces its slice touches.
    """
    total = sum(rows)
    chunk_rows = max(1, chunk_rows)
    result = []
    for start in range(0, total, chunk_rows):
        end = min(total, start + chunk_rows)
        parts, offset = [], 0
        for index, count in enumerate(rows):
            low, high = max(start, offset), min(end, offset + count)
            if low < high:
                parts.append((index, low - offset, high - low))
            offset += count
        result.append(parts)
    return result


@dataclass
class ReducePlan:
    """The reduce tasks of an exchange: coalesced partition groups, then the skewed partitions to split."""

    groups: list[tuple[int, ...]]
    skewed: list[int] = field(default_factory=list)
    chunk_rows: int = 1  # the median rows of a reduce task: the size of a split partition's slices
    notes: list[str] = field(default_factory=list)


def plan_exchange_reduce(stage_id: int, stats, parts: list, task_bytes: int, config, probe_index: int | None = None,
                         exclude: set[int] = frozenset(), fixed: bool = False,
                         when_empty: bool = False) -> tuple[ReducePlan, list[int]]:
    """Record a finished exchange's partition sizes in `stats` and plan its reduce tasks.
    `parts`: each input's measured figures (`.bytes` and `.rows` per partition)."""
    count = len(parts[0].bytes)
    sizes = [sum(part.bytes[p] for part in parts) for p in range(count)]
    rows = [sum(part.rows[p] for part in parts) for p in range(count)]
    stats.exchanges.append({"stage": stage_id, "partition_bytes": sizes, "partition_rows": rows})
    stats.emit("exchange", stage=stage_id, partitions=sizes, rows=rows)
    plan = plan_reduce(rows, sizes, task_bytes, config, exclude=exclude,
                       probe_bytes=parts[probe_index].bytes if probe_index is not None else None,
                       fixed=fixed, when_empty=when_empty)
    return plan, sizes


def plan_reduce(rows: list[int], sizes: list[int], task_bytes: int, config, *, probe_bytes: list[int] | None = None,
                exclude: set[int] = frozenset(), fixed: bool = False, when_empty: bool = False) -> ReducePlan:
    """Reduce tasks for an exchange with these rows and bytes per partition (all inputs summed).

    `probe_bytes`: a join's streamed side per partition, whose skewed partitions are split;
    `exclude`: partitions handled apart (a holistic aggregation's skewed ones); `fixed`:
    repartition(n) keeps every partition; `when_empty`: a global aggregate runs once over nothing.
    """
    live = [p for p in range(len(rows)) if rows[p]]
    if not live:
        return ReducePlan([(0,)] if when_empty else [])
    if not config.adaptive or fixed:
        return ReducePlan([(p,) for p in live])
    skewed = set(exclude)
    if probe_bytes is not None:
        skewed = _skewed(probe_bytes, live, config.skew_factor, config.skew_min_bytes)
    groups = coalesce(live, sizes, task_bytes, skewed)
    notes = [f"coalesced {len(live) - len(skewed)} partitions into {len(groups)} reduce tasks"] \
        if len(groups) > 1 else []
    chunk_rows = max(1, int(median([sum(rows[p] for p in group) for group in groups] or [1])))
    return ReducePlan(groups, sorted(skewed) if probe_bytes is not None else [], chunk_rows, notes)


def holistic_skew(reducer, schema, rows: list[int], sizes: list[int], config,
                  fixed: bool) -> tuple[set[int], str | None]:
    """Skewed partitions of a raw-row aggregation that can be aggregated in two levels, or why none can."""
    from ..expr.types import arrow_to_polars
    from . import holistic_split
    from .exchange import FinalAggregate
    if not (config.adaptive and isinstance(reducer, FinalAggregate) and not reducer.plan.two_phase
            and reducer.plan.keys and not fixed):
        return set(), None
    live = [p for p in range(len(rows)) if rows[p]]
    if len(live) < 2:
        return set(), None
    found = _skewed(sizes, live, config.skew_factor, config.skew_min_bytes)
    if found:
        empty = arrow_to_polars(schema.empty_table())
        reason = holistic_split.split_reason(
            reducer.plan, empty.select(holistic_split.holistic_value(reducer.plan)).to_series().dtype)
        if reason is not None:
            return set(), f"{len(found)} skewed partition(s) not split: {reason}"
    return found, None


def reduce_keys(stage_id: int, groups: list[tuple[int, ...]]) -> list[str]:
    """The completion-log keys of a stage's reduce tasks (slices of one split partition are numbered)."""
    seen: dict[tuple[int, ...], int] = {}
    keys = []
    for group in groups:
        keys.append(f"s{stage_id}:p{','.join(map(str, group))}:{seen.get(group, 0)}")
        seen[group] = seen.get(group, 0) + 1
    return keys


def hot_keys(table, keys: list[str], stage: int) -> list[dict]:
    """The keys holding at least 1/HOT_KEY_SHARE of a skewed partition's rows (at most three), with their counts."""
    import polars as pl

    from ..expr.types import arrow_to_polars
    counts = arrow_to_polars(table.select(keys)).group_by(keys).len().sort("len", descending=True).head(3)
    counts = counts.filter(pl.col("len") * HOT_KEY_SHARE >= table.num_rows)
    found = []
    for row in counts.iter_rows(named=True):
        rows = row.pop("len")
        found.append({"stage": stage, "key": row, "rows": rows})
    return found

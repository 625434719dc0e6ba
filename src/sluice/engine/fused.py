"""A fused stage: collect the input stages, then run one Polars query (physical/fusion.py).

Local Parquet scans (and the filters and projections over them) are read by Polars inside
the query. Other inputs run as ordinary stages (parallel read tasks, their operators, the
budget's admission control), one after another, each gathered into one table. The query
then runs on the driver's thread; Polars spreads it over its own thread pool. Its result is
handed on in slices of about a read task's size, so that the operators fused after it (a
write, a UDF) still run in parallel tasks (stage_run.py).

If Polars fails (an expression meets a value it cannot handle, a file it cannot read), the
subtree runs again as ordinary stages over the collected inputs (the scans Polars read are
read again through their read tasks): bad rows and corrupt files are then quarantined, or
reported, exactly as without fusion, and the collected inputs are not read twice.
"""

from __future__ import annotations

import time
from typing import Iterator

import polars as pl
import pyarrow as pa

from ..expr.types import normalize_schema
from ..io.memory import ArrowSource
from ..io.source import TARGET_TASK_BYTES
from ..physical.fusion import replace_inputs
from ..physical.planner import plan_staged
from ..plan.logical import Scan
from .backend import WORK_FACTOR, Out

FALLBACK_ID_STRIDE = 1000  # the fallback stages of fused stage N are numbered from 1000 * (N + 1)


class FusedRun:
    def __init__(self, owner):
        self.owner = owner  # the StageRun of this stage
        self.stage = owner.stage
        self.query = owner.stage.fused

    def outputs(self) -> Iterator[Out]:
        tables = [self._collect(stage, leaf) for stage, leaf in zip(self.stage.inputs, self.query.inputs)]
        budget, stats = self.owner.backend.budget, self.owner.context.stats
        rows_in, bytes_in = sum(t.num_rows for t in tables), sum(t.nbytes for t in tables)
        reserved = bytes_in * WORK_FACTOR
        budget.try_reserve(reserved, force=True)
        try:
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                result, scanned = self.query.run(tables)
                stats.add_input(scanned)
            except pl.exceptions.PolarsError as exc:
                result = None
                failure = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if result is not None:
                stats.record(self.stage.id, "PolarsQuery", rows_in, result.num_rows, bytes_in, result.nbytes,
                             time.perf_counter() - started, time.process_time() - cpu_started)
        finally:
            budget.release(reserved)
        if result is None:
            yield from self._staged(tables, failure)
            return
        for piece in slices(result):
            yield self.owner.put(piece)

    def _collect(self, stage, leaf) -> pa.Table:
        backend = self.owner.backend
        blocks = [backend.fetch(out.handles[0]) for out in self.owner.upstream(stage)]
        if not blocks:
            return normalize_schema(leaf.schema).empty_table()
        return pa.concat_tables(blocks, promote_options="permissive") if len(blocks) > 1 else blocks[0]

    def _staged(self, tables: list[pa.Table], failure: str) -> Iterator[Out]:
        first_id = FALLBACK_ID_STRIDE * (self.stage.id + 1)
        inputs = [Scan(ArrowSource(table, f"input {i} of fused stage {self.stage.id}"))
                  for i, table in enumerate(tables)]
        staged = plan_staged(replace_inputs(self.query, inputs), self.owner.context.config, first_id)
        self.owner.context.stats.note(
            f"stage {self.stage.id}: the fused query failed ({failure}); ran its operators as stages "
            f"{first_id}-{staged.id} over the collected inputs instead, row by row")
        yield from self.owner.upstream(staged)


def slices(table: pa.Table) -> Iterator[pa.Table]:
    if table.num_rows == 0:
        return
    rows = max(1, TARGET_TASK_BYTES * table.num_rows // max(table.nbytes, 1))
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)

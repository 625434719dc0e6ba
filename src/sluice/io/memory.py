"""Sources that need no files: an Arrow table already in memory, and a generated range.

Both split into read tasks like any file source, so the same engine paths (pruning,
parallelism, the memory budget) apply to a test's in-memory table and to a lake.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa

from ..expr.types import without_view_types
from .source import (
    TARGET_TASK_BYTES, ReadTask, ScanRequest, Source, apply_request_in_memory, apply_request_keeping_positions,
    with_positions,
)

MEMORY_TASK_ROWS = 1 << 20


class ArrowSource(Source):
    def __init__(self, table: pa.Table, label: str = "arrow"):
        schema = without_view_types(table.schema)
        self.table = table if schema.equals(table.schema) else table.cast(schema)
        self.label = label

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema

    def describe(self) -> str:
        return f"{self.label} ({self.table.num_rows} rows)"

    def estimated_bytes(self, columns=None, predicates=()) -> int:
        table = self.table if columns is None else self.table.select(list(columns))
        return table.nbytes

    def plan_tasks(self, request: ScanRequest) -> list[ReadTask]:
        selected = self.table.select(request.read_columns(self.schema))
        rows_per_task = MEMORY_TASK_ROWS
        if selected.num_rows and selected.nbytes:
            rows_per_task = max(1, min(MEMORY_TASK_ROWS, TARGET_TASK_BYTES * selected.num_rows // selected.nbytes))
        tasks = []
        for start in range(0, max(selected.num_rows, 1), rows_per_task):
            piece = self.table.slice(start, rows_per_task)
            tasks.append(ReadTask(
                read=lambda piece=piece: iter([apply_request_in_memory(piece, request)]),
                estimated_bytes=max(selected.slice(start, rows_per_task).nbytes, 1),
                description=f"{self.label} rows {start}-{start + piece.num_rows}",
                rows=((self.label, start, start + piece.num_rows),),
                read_positions=lambda piece=piece, start=start: iter([
                    apply_request_keeping_positions(with_positions(piece, None, start), request)]),
            ))
        return tasks


class RangeSource(Source):
    """The integers [start, end) in a column named `id`, generated lazily per task."""

    def __init__(self, start: int, end: int, step: int = 1):
        self.start, self.end, self.step = start, end, step

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field("id", pa.int64())])

    @property
    def num_rows(self) -> int:
        return len(range(self.start, self.end, self.step))

    def describe(self) -> str:
        return f"range({self.start}, {self.end}, {self.step})"

    def estimated_bytes(self, columns=None, predicates=()) -> int:
        return self.num_rows * 8

    def plan_tasks(self, request: ScanRequest) -> list[ReadTask]:
        rows = self.num_rows if request.limit is None or request.residual is not None else min(
            self.num_rows, request.limit)
        per_task = MEMORY_TASK_ROWS * 4
        return [
            ReadTask(read=lambda first=first: self._read(first, min(per_task, rows - first), request),
                     estimated_bytes=max(8 * min(per_task, rows - first), 1),
                     description=f"range rows {first}-{min(first + per_task, rows)}",
                     rows=(("range", first, min(first + per_task, rows)),),
                     read_positions=lambda first=first: (
                         apply_request_keeping_positions(with_positions(t.select(["id"]), None, first), request)
                         for t in self._read(first, min(per_task, rows - first), _all_rows(request))))
            for first in range(0, max(rows, 1), per_task)
        ]

    def _read(self, first: int, count: int, request: ScanRequest) -> Iterator[pa.Table]:
        begin = self.start + first * self.step
        values = np.arange(begin, begin + max(count, 0) * self.step, self.step, dtype=np.int64)
        yield apply_request_in_memory(pa.table({"id": values}), request)


def _all_rows(request: ScanRequest) -> ScanRequest:
    """The request without its filters: positions are numbered before rows are filtered out."""
    import dataclasses
    return dataclasses.replace(request, predicates=(), limit=None, columns=None)

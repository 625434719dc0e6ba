"""Per-operator run statistics: rows and bytes in and out, wall and CPU time.

Worker threads record into one `RunStats` under a lock; recording is per block, so the
lock is taken a few times per block, never per row. `Dataset.stats()` returns the stats of
the last action run on that dataset.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class OperatorStats:
    stage_id: int
    name: str
    blocks: int = 0
    rows_in: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


@dataclass
class StageStats:
    stage_id: int
    name: str
    tasks_total: int | None = None
    tasks_done: int = 0
    held_s: dict[str, float] = field(default_factory=dict)  # seconds held back, by reason


HELD_BY_MEMORY = "waiting for the memory budget"
HELD_BY_CONSUMER = "held back by a slower consumer"


@dataclass
class RunStats:
    run_id: str
    started_at: float = field(default_factory=time.time)
    wall_s: float = 0.0
    status: str = "running"
    operators: dict[tuple[int, str], OperatorStats] = field(default_factory=dict)
    stages: dict[int, StageStats] = field(default_factory=dict)
    peak_reserved_bytes: int = 0
    shuffle_bytes_written: int = 0
    shuffle_bytes_read: int = 0
    spilled_bytes: int = 0  # in-memory size of the blocks spilled
    spill_file_bytes: int = 0  # compressed size on disk
    exchanges: list[dict] = field(default_factory=list)  # per exchange: stage, partition sizes, decisions
    reduce_tasks: dict[int, list[int]] = field(default_factory=dict)  # stage -> rows read by each reduce task
    skewed_keys: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    physical_plan: Any = field(default=None, repr=False)  # the PhysicalPlan this run executed
    retries: int = 0  # task attempts repeated after a transient error
    retry_errors: list[str] = field(default_factory=list)  # the transient errors retried, first ones
    bad_records: int = 0  # rows quarantined to the dead-letter dataset
    bad_records_path: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_shuffle(self, written: int = 0, read: int = 0) -> None:
        with self._lock:
            self.shuffle_bytes_written += written
            self.shuffle_bytes_read += read

    def add_spill(self, memory_bytes: int, file_bytes: int) -> None:
        with self._lock:
            self.spilled_bytes += memory_bytes
            self.spill_file_bytes += file_bytes

    def add_retry(self, error: BaseException) -> None:
        with self._lock:
            self.retries += 1
            if len(self.retry_errors) < 20:
                self.retry_errors.append(f"{type(error).__name__}: {error}")

    def add_reduce_task(self, stage_id: int, rows: int) -> None:
        with self._lock:
            self.reduce_tasks.setdefault(stage_id, []).append(rows)

    def record(self, stage_id: int, name: str, rows_in: int, rows_out: int, bytes_in: int, bytes_out: int,
               wall_s: float, cpu_s: float) -> None:
        with self._lock:
            op = self.operators.get((stage_id, name))
            if op is None:
                op = self.operators[(stage_id, name)] = OperatorStats(stage_id, name)
            op.blocks += 1
            op.rows_in += rows_in
            op.rows_out += rows_out
            op.bytes_in += bytes_in
            op.bytes_out += bytes_out
            op.wall_s += wall_s
            op.cpu_s += cpu_s

    def stage(self, stage_id: int, name: str) -> StageStats:
        with self._lock:
            if stage_id not in self.stages:
                self.stages[stage_id] = StageStats(stage_id, name)
            return self.stages[stage_id]

    def add_held(self, stage_id: int, reason: str, seconds: float) -> None:
        with self._lock:
            held = self.stages[stage_id].held_s
            held[reason] = held.get(reason, 0.0) + seconds

    def task_done(self, stage_id: int) -> None:
        with self._lock:
            self.stages[stage_id].tasks_done += 1

    def operator_list(self) -> list[OperatorStats]:
        return sorted(self.operators.values(), key=lambda o: o.stage_id)

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id, "status": self.status, "wall_s": self.wall_s,
            "operators": [vars(o).copy() for o in self.operator_list()],
            "stages": [vars(s).copy() for s in self.stages.values()],
            "shuffle_bytes_written": self.shuffle_bytes_written, "shuffle_bytes_read": self.shuffle_bytes_read,
            "spilled_bytes": self.spilled_bytes, "exchanges": self.exchanges, "skewed_keys": self.skewed_keys,
            "reduce_tasks": self.reduce_tasks, "notes": self.notes, "retries": self.retries,
            "retry_errors": self.retry_errors, "bad_records": self.bad_records,
            "bad_records_path": self.bad_records_path,
        }

    def table(self):
        from rich.table import Table
        table = Table(title=f"sluice run {self.run_id}: {self.status} in {self.wall_s:.2f}s")
        for column in ("stage", "operator", "blocks", "rows in", "rows out", "bytes in", "bytes out", "wall s", "cpu s"):
            table.add_column(column, justify="left" if column in ("stage", "operator") else "right")
        for op in self.operator_list():
            table.add_row(str(op.stage_id), op.name, f"{op.blocks:,}", f"{op.rows_in:,}", f"{op.rows_out:,}",
                          format_bytes(op.bytes_in), format_bytes(op.bytes_out), f"{op.wall_s:.2f}", f"{op.cpu_s:.2f}")
        return table

    def footer_lines(self) -> list[str]:
        lines = []
        if self.bad_records:
            lines.append(f"[bold red]{self.bad_records:,} BAD RECORDS quarantined[/] in {self.bad_records_path}: "
                         f"`sluice bad-records {self.run_id}` lists them, `sluice repro {self.run_id}` rebuilds one")
        if self.retries:
            lines.append(f"{self.retries:,} task attempt(s) retried after transient errors, e.g. {self.retry_errors[0]}")
        if self.shuffle_bytes_written or self.spilled_bytes:
            lines.append(f"shuffle: {format_bytes(self.shuffle_bytes_written)} written, "
                         f"{format_bytes(self.shuffle_bytes_read)} read; spilled {format_bytes(self.spilled_bytes)} "
                         f"({format_bytes(self.spill_file_bytes)} on disk)")
        for key in self.skewed_keys:
            lines.append(f"skewed key in stage {key['stage']}: {key['key']} with {key['rows']:,} rows")
        for stage in self.stages.values():
            for reason, seconds in stage.held_s.items():
                if seconds >= 0.1:
                    lines.append(f"stage {stage.stage_id} was {reason} for {seconds:.1f}s")
        lines += self.notes
        return lines

    def __str__(self) -> str:
        import io

        from rich.console import Console
        console = Console(width=140, record=True, file=io.StringIO())
        console.print(self.table())
        for line in self.footer_lines():
            console.print(line)
        return console.export_text()


def report_console():
    """A rich console: the terminal's width on a terminal, 140 columns in files and pipes."""
    import sys

    from rich.console import Console
    return Console(width=None if sys.stdout.isatty() else 140)


def format_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"

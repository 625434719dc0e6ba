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

from .cost import CostBasis, estimate


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
    files: int = 0  # a write's: the files it wrote


@dataclass
class StageStats:
    stage_id: int
    name: str
    tasks_total: int | None = None
    tasks_done: int = 0
    rows_done: int = 0
    in_flight: int = 0  # tasks submitted and not yet handed on
    state: str = ""  # why the stage is not producing right now, or ""
    started_at: float = 0.0
    ended_at: float = 0.0
    peak_reserved_bytes: int = 0  # the most memory admitted (all stages) while this stage admitted tasks
    retries: int = 0
    bad_records: int = 0
    spilled_bytes: int = 0
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
    input_bytes: int = 0  # bytes of the input files read (their size on disk, or the part read)
    output_bytes: int = 0  # bytes of the files written
    output_rows: int = 0  # rows the run handed to its consumer, or wrote
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
    checks: list[dict] = field(default_factory=list)  # data-quality checks' verdicts (physical/checks.py)
    bad_records: int = 0  # rows quarantined to the dead-letter dataset
    bad_records_path: str | None = None
    cost_basis: Any = field(default=None, repr=False)  # observe.cost.CostBasis: cores, budget, prices at run start
    events: Any = field(default=None, repr=False)  # the run's EventLog, for what is both a figure and an event
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def emit(self, event: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(event, **fields)

    def add_shuffle(self, written: int = 0, read: int = 0) -> None:
        with self._lock:
            self.shuffle_bytes_written += written
            self.shuffle_bytes_read += read

    def add_input(self, stored_bytes: int) -> None:
        with self._lock:
            self.input_bytes += stored_bytes

    def add_spill(self, memory_bytes: int, file_bytes: int, stage_id: int | None = None) -> None:
        with self._lock:
            self.spilled_bytes += memory_bytes
            self.spill_file_bytes += file_bytes
            if stage_id in self.stages:
                self.stages[stage_id].spilled_bytes += memory_bytes

    def add_skewed_keys(self, found: list[dict]) -> None:
        with self._lock:
            self.skewed_keys.extend(found)

    def add_bad_records(self, stage_id: int, count: int) -> None:
        with self._lock:
            if stage_id in self.stages:
                self.stages[stage_id].bad_records += count

    def admitted(self, stage_id: int, reserved_bytes: int) -> None:
        stage = self.stages.get(stage_id)
        if stage is not None and reserved_bytes > stage.peak_reserved_bytes:
            stage.peak_reserved_bytes = reserved_bytes

    def add_retry(self, error: BaseException) -> None:
        with self._lock:
            self.retries += 1
            if len(self.retry_errors) < 20:
                self.retry_errors.append(f"{type(error).__name__}: {error}")
        from .events import current_block
        stage, block = current_block()
        if stage in self.stages:
            with self._lock:
                self.stages[stage].retries += 1
        self.emit("retry", stage=stage, block=block, error=f"{type(error).__name__}: {error}")

    def add_reduce_task(self, stage_id: int, rows: int) -> None:
        with self._lock:
            self.reduce_tasks.setdefault(stage_id, []).append(rows)

    def record(self, stage_id: int, name: str, rows_in: int, rows_out: int, bytes_in: int, bytes_out: int,
               wall_s: float, cpu_s: float, files: int = 0) -> None:
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
            op.files += files

    def stage(self, stage_id: int, name: str) -> StageStats:
        with self._lock:
            if stage_id not in self.stages:
                self.stages[stage_id] = StageStats(stage_id, name)
            return self.stages[stage_id]

    def add_held(self, stage_id: int, reason: str, seconds: float) -> None:
        with self._lock:
            held = self.stages[stage_id].held_s
            held[reason] = held.get(reason, 0.0) + seconds

    def task_done(self, stage_id: int, rows: int = 0) -> None:
        with self._lock:
            stage = self.stages[stage_id]
            stage.tasks_done += 1
            stage.rows_done += rows

    def note(self, text: str) -> None:
        """A decision or remark worth reading after the run (adaptive choices, pool sizes)."""
        with self._lock:
            self.notes.append(text)
        self.emit("note", text=text)

    def set_cost_basis(self, config) -> None:
        """Record the cores, memory budget and prices that the cost estimate uses."""
        self.cost_basis = CostBasis.from_config(config)

    @property
    def bytes_processed(self) -> int:
        return self.input_bytes + self.shuffle_bytes_written + self.shuffle_bytes_read + self.output_bytes

    def cost(self):
        """The run's estimated cost (an observe.cost.CostEstimate), or None without a cost basis."""
        if self.cost_basis is None:
            return None
        return estimate(self.cost_basis, self.wall_s, self.bytes_processed)

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
            "bad_records_path": self.bad_records_path, "checks": self.checks,
            "input_bytes": self.input_bytes, "output_bytes": self.output_bytes, "output_rows": self.output_rows,
            "bytes_processed": self.bytes_processed,
            "cost": cost.to_dict() if (cost := self.cost()) is not None else None,
        }

    def table(self):
        """The per-stage table, then the per-operator one."""
        from rich.console import Group
        return Group(self.stage_table(), self.operator_table())

    def stage_table(self):
        from rich.table import Table
        table = Table(title=f"sluice run {self.run_id}: {self.status} in {self.wall_s:.2f}s")
        for column in ("stage", "tasks", "rows out", "bytes out", "wall s", "cpu s", "peak reserved", "retries",
                       "bad records", "spilled", "held back s"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        operators = self.operator_list()
        for stage in sorted(self.stages.values(), key=lambda s: s.stage_id):
            ops = [op for op in operators if op.stage_id == stage.stage_id]
            last = ops[-1] if ops else None
            wall = (stage.ended_at or stage.started_at) - stage.started_at
            table.add_row(stage.name if stage.name.startswith("stage") else f"stage {stage.stage_id}",
                          f"{stage.tasks_done:,}", f"{last.rows_out:,}" if last else "",
                          format_bytes(last.bytes_out) if last else "", f"{wall:.2f}",
                          f"{sum(op.cpu_s for op in ops):.2f}", format_bytes(stage.peak_reserved_bytes),
                          str(stage.retries), f"[bold red]{stage.bad_records:,}[/]" if stage.bad_records else "0",
                          format_bytes(stage.spilled_bytes), f"{sum(stage.held_s.values()):.1f}")
        return table

    def operator_table(self):
        from rich.table import Table
        table = Table(title="operators")
        for column in ("stage", "operator", "blocks", "rows in", "rows out", "bytes in", "bytes out", "wall s", "cpu s"):
            table.add_column(column, justify="left" if column in ("stage", "operator") else "right")
        for op in self.operator_list():
            name = f"{op.name} ({op.files:,} file{'' if op.files == 1 else 's'})" if op.files else op.name
            table.add_row(str(op.stage_id), name, f"{op.blocks:,}", f"{op.rows_in:,}", f"{op.rows_out:,}",
                          format_bytes(op.bytes_in), format_bytes(op.bytes_out), f"{op.wall_s:.2f}", f"{op.cpu_s:.2f}")
        return table

    def footer_lines(self) -> list[str]:
        lines = []
        if self.bad_records:
            lines.append(f"[bold red]{self.bad_records:,} BAD RECORDS quarantined[/] in {self.bad_records_path}: "
                         f"`sluice bad-records {self.run_id}` lists them, `sluice repro {self.run_id}` rebuilds one")
        for check in self.checks:
            colour = {"passed": "green", "warned": "bold yellow", "failed": "bold red"}[check["status"]]
            lines.append(f"[{colour}]check {check['status'].upper()}[/] {check['check']}: {check['detail']}")
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
        lines.append(f"bytes processed: {format_bytes(self.bytes_processed)} = input {format_bytes(self.input_bytes)} "
                     f"+ shuffle write {format_bytes(self.shuffle_bytes_written)} + shuffle read "
                     f"{format_bytes(self.shuffle_bytes_read)} + output {format_bytes(self.output_bytes)}")
        if (cost := self.cost()) is not None:
            lines += cost.lines()
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

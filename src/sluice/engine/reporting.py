"""What the driver learns from a finished task, and what a stage run reports about itself.

Why this module exists: every task hands back a `Report` (task.py); folding it into the run
(operator statistics, input bytes, retries, hot keys, the task's start and end events, rows it
quarantined or could not decode) is the same whatever ran the task. `StageReporting` keeps a
stage run's start and end times, counts its finished tasks for the progress bar, and says why
it is held back.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from ..observe.events import set_current_block
from ..physical.stages import Stage
from ..reliability.quarantine import BadRow
from .context import RunContext
from .task import Report

T = TypeVar("T")


def fold_report(context: RunContext, stage: Stage, report: Report, block: str, covers: dict,
                before_end: Callable[[], None] | None = None, task_key: str | None = None) -> None:
    """Fold a task's report into the run: statistics, events, retries, quarantined rows. `before_end` runs
    before the task_end event (a write task is logged as finished in the run store first, so every task the
    events say ended ok is one a resume skips). `task_key`: the task's key, kept with its bad records."""
    stats = context.stats
    set_current_block(report.stage, block)
    try:
        for record in report.ops:
            stats.record(*record)
        if report.input_bytes:
            stats.add_input(report.input_bytes)
        for error in report.retries:
            stats.add_retry(error)
        if report.hot_keys:
            stats.add_skewed_keys(report.hot_keys)
        for partial in report.checks:
            context.checks[partial.name].add(partial)
        task = {"stage": report.stage, "block": block, "attempt": 1, "pid": report.pid, "host": report.host,
                "node": report.node, "thread": report.thread}
        context.events.emit("task_start", ts=report.started, **task, **covers)
        for bad in report.unreadable:
            context.dead_letters.record_unreadable(report.stage, *bad)
        for batch in report.bad:
            operator, label = stage.operators[batch.op_index], stage.operator_labels[batch.op_index]
            seen = stats.operators[(report.stage, label)].rows_in
            new = context.dead_letters.record(report.stage, operator, label, f"stage{report.stage}-op{batch.op_index}",
                                              batch.rows, [BadRow(i, e) for i, e in enumerate(batch.errors)],
                                              batch.positions, seen, task_key)
            if new:  # a resumed run's task that ran again finds the rows an earlier attempt recorded
                stats.add_bad_records(report.stage, new)
                stats.emit("bad_records", stage=report.stage, operator=label, block=block, count=new)
        if before_end is not None:
            before_end()
        context.events.emit("task_end", ts=report.ended, **{k: task[k] for k in ("stage", "block", "attempt")},
                            status="ok", rows=report.output_rows, bytes=sum(report.bytes),
                            wall_s=report.ended - report.started)
    finally:
        set_current_block(None, None)


def log_failed_task(context: RunContext, stage_id: int, block: str, covers: dict, error: BaseException,
                    waited_since: float) -> None:
    """Log a failed task (its start and end, where it ran) and count the retries it made."""
    report = getattr(error, "task_report", None)
    if report is not None:
        try:
            del error.task_report  # type: ignore[attr-defined] - the user gets their exception as it was
        except AttributeError:
            pass
    task = {"stage": stage_id, "block": block, "attempt": 1}
    end = {"wall_s": time.time() - waited_since}
    if isinstance(report, Report):
        context.events.emit("task_start", ts=report.started, **task, pid=report.pid, host=report.host,
                            node=report.node, thread=report.thread, **covers)
        end = {"ts": report.ended, "wall_s": report.ended - report.started}
        set_current_block(stage_id, block)
        try:
            for retried in report.retries:
                context.stats.add_retry(retried)
        finally:
            set_current_block(None, None)
    context.events.emit("task_end", **task, **end, status="failed", error=f"{type(error).__name__}: {error}")


class StageReporting:
    """What a stage run reports the same way on every backend: when it started and ended (its stats,
    the stage_end event), each finished task, its progress bar, and why it is held back. Subclasses
    set `stage` and `context`."""

    stage: Stage
    context: RunContext

    def _reported(self, outputs: Iterator[T]) -> Iterator[T]:
        """`outputs`, with the stage's start and end times kept in its stats and a stage_end event after."""
        stage, stats = self.stage, self.context.stats
        stats.stage(stage.id, stage.name).started_at = time.time()
        try:
            yield from outputs
        finally:
            progress = stats.stages[stage.id]
            progress.ended_at = time.time()
            self.context.progress.end_stage(stage.id)
            self.context.events.emit("stage_end", stage=stage.id, rows=progress.rows_done, tasks=progress.tasks_done)

    def _counted(self, outputs: Iterable[T]) -> Iterator[T]:
        """`outputs`, each counted as a finished task (the stage's stats and progress bar). An output no task
        of this stage made (a fused query's slice, a block handed on unchanged, a write an earlier attempt
        finished) is logged as a driver block, so the event log shows every stage at work."""
        stats, progress, stage_id = self.context.stats, self.context.progress, self.stage.id
        numbers = itertools.count()
        asked = time.time()
        for output in outputs:
            rows = output.rows  # type: ignore[attr-defined]
            stats.task_done(stage_id, rows)
            progress.advance(stage_id, rows)
            report = output.report  # type: ignore[attr-defined]
            if report.stage != stage_id or not report.started:
                self._log_driver_block(output, f"s{stage_id}-d{next(numbers)}", asked)
            yield output
            asked = time.time()

    def _log_driver_block(self, output, block: str, asked: float) -> None:
        """task_start and task_end of a block the driver made or handed on: from when the stage asked for it."""
        events, task = self.context.events, {"stage": self.stage.id, "block": block, "attempt": 1}
        ended = time.time()
        events.emit("task_start", ts=asked, **task, pid=events.pid, host=events.host,
                    thread=threading.current_thread().name, driver=True)
        events.emit("task_end", ts=ended, **task, status="skipped" if output.skipped else "ok", rows=output.rows,
                    bytes=output.bytes, wall_s=ended - asked)

    def _start(self, tasks_total: int | None, known_rows: int | None = None) -> None:
        """`known_rows`: the rows a scan's read tasks cover, where the source knows them all."""
        self.context.progress.start_stage(self.stage.id, self.stage.name, tasks_total,
                                          tuple(s.id for s in self.stage.upstreams), known_rows)
        self.context.events.emit("stage_start", stage=self.stage.id, name=self.stage.name, tasks_total=tasks_total)

    def set_state(self, state: str) -> None:
        """Say why the stage is not producing (held back), or "" when it goes again."""
        self.context.stats.stages[self.stage.id].state = state
        self.context.progress.set_state(self.stage.id, state)

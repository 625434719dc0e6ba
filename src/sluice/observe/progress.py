"""Progress bars per stage, on a terminal only: rows done of an estimated total, rows per second, the
time left, tasks done, and why a stage is held back while it is.

Bars show when stdout is a terminal, and never when SLUICE_PROGRESS=0. Anything else (a pipe,
CI, a notebook capturing output) gets no bars, so logs stay clean.

A stage's total is an estimate until the stage ends (marked `~`): a scan's is the rows its read tasks
cover where the source knows them, else the rows per task measured so far times its tasks; any other
stage's is the sum of its input stages' totals (rows in, rows out). When a stage ends its total is the
rows it produced, so the last figures on the screen are the summary's. Rows that UDF workers have
finished inside a running task count at once (`advance_partial`), so a UDF stage moves while its
tasks run.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field


def progress_enabled() -> bool:
    if os.environ.get("SLUICE_PROGRESS", "").strip() == "0":
        return False
    return sys.stdout.isatty()


@dataclass
class StageProgress:
    """What one stage's bar shows, kept whether or not a bar is drawn (the arithmetic is tested alone)."""

    name: str
    tasks_total: int | None = None
    upstreams: tuple[int, ...] = ()
    known_rows: int | None = None  # the rows its read tasks cover, where the source knows them all
    tasks_done: int = 0
    rows_done: int = 0  # rows of finished tasks
    partial_rows: int = 0  # rows UDF workers finished inside tasks still running
    state: str = ""
    ended: bool = False
    bar: int | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return self.rows_done + self.partial_rows


class Progress:
    """One bar per stage; draws nothing when progress is disabled, but keeps the figures."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = progress_enabled() if enabled is None else enabled
        self.stages: dict[int, StageProgress] = {}
        self._lock = threading.Lock()
        self._progress = None
        if self.enabled:
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn
            self._progress = RichProgress(
                TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.fields[rows]} rows"), TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[tasks]}"),
                TextColumn("[yellow]{task.fields[state]}"), transient=False, refresh_per_second=4)
            self._progress.start()

    # ------------------------------------------------------------ what the engine tells it

    def start_stage(self, stage_id: int, name: str, tasks_total: int | None, upstreams: tuple[int, ...] = (),
                    known_rows: int | None = None) -> None:
        with self._lock:
            stage = self.stages[stage_id] = StageProgress(name, tasks_total, upstreams, known_rows)
            if self._progress is not None:
                stage.bar = self._progress.add_task(name, total=None, rows="0", rate="", tasks="", state="")
            self._redraw()

    def set_state(self, stage_id: int, state: str) -> None:
        """Why a stage is not producing right now (held back by memory, by a slow consumer), or ""."""
        with self._lock:
            if stage_id in self.stages:
                self.stages[stage_id].state = state
                self._redraw()

    def advance(self, stage_id: int, rows: int) -> None:
        """A task of the stage finished, producing `rows`."""
        with self._lock:
            if stage_id in self.stages:
                stage = self.stages[stage_id]
                stage.tasks_done += 1
                stage.rows_done += rows
                self._redraw()

    def advance_partial(self, stage_id: int, rows: int) -> None:
        """Rows finished inside a running task (a UDF's slices); take them back (negative) before the task
        reports them whole through `advance`."""
        with self._lock:
            if stage_id in self.stages:
                self.stages[stage_id].partial_rows += rows
                self._redraw()

    def end_stage(self, stage_id: int) -> None:
        with self._lock:
            if stage_id in self.stages:
                stage = self.stages[stage_id]
                stage.ended, stage.partial_rows, stage.state = True, 0, ""
                self._redraw()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # ------------------------------------------------------------ estimates

    def total(self, stage_id: int) -> tuple[int | None, bool]:
        """(the stage's total rows, whether it is exact): exact once the stage ended."""
        stage = self.stages.get(stage_id)
        if stage is None:
            return None, False
        if stage.ended:
            return stage.rows_done, True
        if stage.known_rows is not None and not stage.upstreams:
            return max(stage.known_rows, stage.rows), False
        if stage.upstreams:
            totals = [self.total(upstream)[0] for upstream in stage.upstreams]
            return (max(sum(totals), stage.rows), False) if all(t is not None for t in totals) else (None, False)
        if stage.tasks_total and stage.tasks_done:
            return max(stage.rows_done * stage.tasks_total // stage.tasks_done, stage.rows), False
        return None, False

    # ------------------------------------------------------------ drawing

    def _redraw(self) -> None:
        if self._progress is None:
            return
        tasks_by_id = {task.id: task for task in self._progress.tasks}
        for stage_id, stage in self.stages.items():
            total, exact = self.total(stage_id)
            shown_total = "" if total is None else f"/{'' if exact else '~'}{total:,}"
            task = tasks_by_id.get(stage.bar)
            speed = task.speed if task is not None else None
            tasks = f"{stage.tasks_done}/{stage.tasks_total} tasks" if stage.tasks_total else \
                f"{stage.tasks_done} tasks"
            self._progress.update(stage.bar, completed=stage.rows, total=total,
                                  rows=f"{stage.rows:,}{shown_total}",
                                  rate=f"{speed:,.0f} rows/s" if speed and not stage.ended else "",
                                  tasks=tasks, state=stage.state)

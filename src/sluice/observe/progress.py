"""Progress bars per stage, on a terminal only, saying when a stage is held back and why.

Bars show when stdout is a terminal, and never when SLUICE_PROGRESS=0. Anything else (a pipe,
CI, a notebook capturing output) gets no bars, so logs stay clean.
"""

from __future__ import annotations

import os
import sys


def progress_enabled() -> bool:
    if os.environ.get("SLUICE_PROGRESS", "").strip() == "0":
        return False
    return sys.stdout.isatty()


class Progress:
    """One bar per stage; a no-op object when progress is disabled."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = progress_enabled() if enabled is None else enabled
        self._bars: dict[int, int] = {}
        self._progress = None
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
                TimeElapsedColumn
            self._progress = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                          TextColumn("{task.fields[rows]:>12,} rows"), TimeElapsedColumn(),
                                          TextColumn("[yellow]{task.fields[state]}"), transient=False)
            self._progress.start()

    def start_stage(self, stage_id: int, name: str, total: int | None) -> None:
        if self._progress is not None:
            self._bars[stage_id] = self._progress.add_task(name, total=total, rows=0, state="")

    def set_state(self, stage_id: int, state: str) -> None:
        """Why a stage is not producing right now (held back by memory, by a slow consumer), or ""."""
        if self._progress is not None and stage_id in self._bars:
            self._progress.update(self._bars[stage_id], state=state)

    def advance(self, stage_id: int, rows: int) -> None:
        if self._progress is not None and stage_id in self._bars:
            task_id = self._bars[stage_id]
            done_rows = self._progress.tasks[task_id].fields["rows"] + rows
            self._progress.update(task_id, advance=1, rows=done_rows)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

"""The Runner contract, and how a runner is chosen.

A runner takes a physical plan and a run context and returns the ordered stream of output
blocks, recording statistics into the context as it goes. The runner is chosen per action
with `runner=`, else by `sluice.configure(runner=...)` or the SLUICE_RUNNER environment
variable; the default is `local`. To add a runner, subclass `Runner` and register a factory
in `RUNNERS`; the shared integration suite in tests/integration runs against every entry.
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, TypeVar

import pyarrow as pa

from ..config import Config
from ..errors import RunnerError
from ..observe.events import EVENTS_FILE, EventLog
from ..observe.progress import Progress
from ..observe.stats import RunStats
from ..plan.physical import PhysicalPlan, Stage
from ..reliability.run_store import RunStore


T = TypeVar("T")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


@dataclass
class RunContext:
    config: Config
    run_id: str = field(default_factory=new_run_id)
    stats: RunStats = field(init=False)
    progress: Progress = field(default_factory=Progress)
    store: RunStore | None = None  # a resumable run's checkpoints (write runs with checkpoint=True)
    resumed: bool = False  # this is a later attempt at an earlier run, by `sluice resume`

    def __post_init__(self):
        import os
        self.stats = RunStats(self.run_id)
        self.stats.set_cost_basis(self.config)
        self._dead_letters = None
        self.events = EventLog(os.path.join(self.run_dir, EVENTS_FILE))
        self.stats.events = self.events
        if self.config.metrics_port:
            from ..observe.metrics import watch
            watch(self.events, self.config)

    @property
    def run_dir(self) -> str:
        import os
        return os.path.join(self.config.runs_dir, self.run_id)

    @property
    def store_dir(self) -> str:
        """Where this run's store lives (reliability/run_store.py): under checkpoint_dir when set, a path or URI."""
        import posixpath
        if self.config.checkpoint_dir:
            return posixpath.join(self.config.checkpoint_dir.rstrip("/"), self.run_id)
        return self.run_dir

    @property
    def dead_letters(self):
        """The run's dead-letter dataset, created when the first bad record is quarantined."""
        if self._dead_letters is None:
            from ..reliability.quarantine import DeadLetters
            self._dead_letters = DeadLetters(self.run_dir, self.run_id, self.config, self.stats)
        return self._dead_letters


class StageReporting:
    """What a stage run reports the same way on every runner: when it started and ended (its stats,
    the stage_end event), each finished task, its progress bar, and why it is held back. Subclasses
    set `stage` and `context`, and say how many rows an output holds (`_rows_of`)."""

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
            self.context.events.emit("stage_end", stage=stage.id, rows=progress.rows_done, tasks=progress.tasks_done)

    def _counted(self, outputs: Iterable[T]) -> Iterator[T]:
        """`outputs`, each counted as a finished task (the stage's stats and progress bar)."""
        stats, progress, stage_id = self.context.stats, self.context.progress, self.stage.id
        for output in outputs:
            rows = self._rows_of(output)
            stats.task_done(stage_id, rows)
            progress.advance(stage_id, rows)
            yield output

    @staticmethod
    def _rows_of(output: Any) -> int:
        """The rows a task's output holds, in whatever form the runner keeps it."""
        raise NotImplementedError

    def _start(self, tasks_total: int | None) -> None:
        self.context.progress.start_stage(self.stage.id, self.stage.name, tasks_total)
        self.context.events.emit("stage_start", stage=self.stage.id, name=self.stage.name, tasks_total=tasks_total)

    def set_state(self, state: str) -> None:
        """Say why the stage is not producing (held back), or "" when it goes again."""
        self.context.stats.stages[self.stage.id].state = state
        self.context.progress.set_state(self.stage.id, state)


class Runner(ABC):
    name = "runner"

    @abstractmethod
    def execute(self, plan: PhysicalPlan, context: RunContext) -> Iterator[pa.Table]:
        """Run the plan; yield its output blocks in order. Closing the iterator stops the run."""


def _local() -> Runner:
    from .local.executor import LocalRunner
    return LocalRunner()


def _ray() -> Runner:
    from .ray.executor import RayRunner
    return RayRunner()


RUNNERS: dict[str, Callable[[], Runner]] = {"local": _local, "ray": _ray}


def get_runner(name: str) -> Runner:
    factory = RUNNERS.get(name)
    if factory is None:
        raise RunnerError(f"Unknown runner {name!r}. Choose one of: {', '.join(sorted(RUNNERS))}.")
    return factory()

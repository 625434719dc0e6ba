"""The state of one run that every part of the engine shares: its id, settings, stats and stores.

Why this module exists: a run's settings, its statistics and progress, its event log, its
run store (for resume) and its dead-letter dataset are made once per run by the driver and
handed to the engine and the backend; this is the one object that carries them.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..config import Config
from ..observe.events import EVENTS_FILE, EventLog
from ..observe.progress import Progress
from ..observe.stats import RunStats
from ..reliability.run_store import RunStore
from .preemption import Preemption


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
    earlier_attempts: list = field(default_factory=list)  # a resumed run's attempts before this one (run.json)

    def __post_init__(self):
        self.stats = RunStats(self.run_id)
        self.stats.set_cost_basis(self.config)
        self._dead_letters = None
        self.events = EventLog(os.path.join(self.run_dir, EVENTS_FILE))
        self.stats.events = self.events
        self.preemption = Preemption(self.run_id, self.events)
        self.checks: dict = {}  # check name -> physical.checks.CheckState, for the plan being run
        if self.config.metrics_port:
            from ..observe.metrics import watch
            watch(self.events, self.config)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.config.runs_dir, self.run_id)

    @property
    def store_dir(self) -> str:
        """Where this run's store lives (reliability/run_store.py): under checkpoint_dir when set, a path or URI."""
        if self.config.checkpoint_dir:
            return posixpath.join(self.config.checkpoint_dir.rstrip("/"), self.run_id)
        return self.run_dir

    @property
    def has_dead_letters(self) -> bool:
        return self._dead_letters is not None

    @property
    def dead_letters(self):
        """The run's dead-letter dataset, created when the first bad record is quarantined."""
        if self._dead_letters is None:
            from ..reliability.quarantine import DeadLetters
            self._dead_letters = DeadLetters(self.run_dir, self.run_id, self.config, self.stats)
        return self._dead_letters

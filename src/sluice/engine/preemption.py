"""Preemption: a run told to stop (SIGTERM) finishes what is running, keeps it, and says how to go on.

Why this module exists: spot instances and batch schedulers give notice with SIGTERM, then kill
a little later. Killed mid-run, a job loses its running tasks and leaves no word of why. While a
run is driven from the main thread, SIGTERM is caught here: the run starts no more tasks, lets
the running ones finish for up to `SLUICE_GRACE_S` seconds (default 30), logs what they finished
in its run store as usual (write tasks and map tasks of durable exchanges), and fails with a
`PreemptedError` that names `sluice resume RUN`; `sluice run` exits with status 75. A second
SIGTERM, or the grace period running out, stops waiting for the running tasks.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Iterator

from ..config import seconds_from_env
from ..errors import PreemptedError

GRACE_ENV = "SLUICE_GRACE_S"
DEFAULT_GRACE_S = 30.0


def grace_s() -> float:
    return seconds_from_env(GRACE_ENV, DEFAULT_GRACE_S)


class Preemption:
    """Whether the run was told to stop, when, and until when its running tasks may finish."""

    def __init__(self, run_id: str, events):
        self.run_id = run_id
        self.events = events
        self.requested_at: float | None = None
        self.deadline: float | None = None
        self.signals = 0

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def request(self, reason: str = "SIGTERM") -> None:
        self.signals += 1
        if self.requested_at is None:
            self.requested_at = time.time()
            self.deadline = time.monotonic() + grace_s()
            self.events.emit("preempted", reason=reason, grace_s=grace_s())
        else:
            self.deadline = time.monotonic()  # asked again: stop waiting now

    @property
    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def error(self, resumable: bool) -> PreemptedError:
        how = (f"`sluice resume {self.run_id}` goes on from the work it finished" if resumable else
               "it was not resumable (only write runs with checkpoint=True are): run it again")
        return PreemptedError(f"Run {self.run_id} was asked to stop (SIGTERM) and stopped after its running tasks "
                              f"finished; {how}.", self.run_id)


@contextlib.contextmanager
def watching(preemption: Preemption) -> Iterator[Preemption]:
    """Catch SIGTERM into `preemption` while the block runs (only from the main thread, where Python
    delivers signals; elsewhere SIGTERM keeps its meaning)."""
    if threading.current_thread() is not threading.main_thread():
        yield preemption
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda signum, frame: preemption.request())
    try:
        yield preemption
    finally:
        signal.signal(signal.SIGTERM, previous)

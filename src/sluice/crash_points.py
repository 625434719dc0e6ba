"""Test hooks that kill the process at a named point, as a power cut or the OOM killer would.

With SLUICE_TEST_CRASH_AT=<point> (or <point>:<N>, for its N-th visit), the process sends
itself SIGKILL when it reaches that point: no cleanup, no `finally`, no flush beyond what was already written. Crash tests use
it to hit the narrow windows (mid-commit, mid-exchange) that random kills rarely do.
"""

from __future__ import annotations

import os
import signal
import threading

CRASH_POINTS = (
    "mid-exchange",  # a map task's output saved, the exchange not complete
    "after-exchange",  # an exchange persisted, before any reduce task ran
    "after-write-task",  # a write task logged as finished in the run store, the run not done
    "before-commit", "mid-publish", "before-manifest", "after-manifest",  # the commit (io/sinks.py)
)


_hits: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(point: str) -> None:
    """Kill the process at `point` when SLUICE_TEST_CRASH_AT is `point`, or `point:N` (its N-th visit)."""
    wanted = os.environ.get("SLUICE_TEST_CRASH_AT")
    if not wanted or wanted.split(":")[0] != point:
        return
    with _lock:
        _hits[point] = _hits.get(point, 0) + 1
        if _hits[point] >= int(wanted.partition(":")[2] or 1):
            os.kill(os.getpid(), signal.SIGKILL)

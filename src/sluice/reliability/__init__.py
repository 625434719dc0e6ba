"""Reliability: what keeps a job going, or failing cleanly, when the world misbehaves.

`retry` re-runs I/O that failed with a transient error (a reset connection, a timeout, a
throttled object store) with exponential backoff and jitter, and tells transient errors from
deterministic ones (a missing file, a corrupt footer, user code). `manifest` is the commit
log of a written dataset, which the sinks (`sluice.io.sinks`) extend exactly once per run and
the readers (`sluice.io.files`) follow, so a crashed write is never seen. `quarantine` isolates
bad rows into the dead-letter dataset and `repro` replays one. `run_store` keeps what a write
run needs to be resumed (its plan, input fingerprints, finished tasks, exchange outputs), and
`resume` finishes a crashed run from it; `resume.collect_garbage` is `sluice gc`.
"""

from .retry import is_transient, retrying

__all__ = ["is_transient", "retrying"]

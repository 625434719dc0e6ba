"""Reliability: what keeps a job going, or failing cleanly, when the world misbehaves.

`retry` re-runs I/O that failed with a transient error (a reset connection, a timeout, a
throttled object store) with exponential backoff and jitter, and tells transient errors from
deterministic ones (a missing file, a corrupt footer, user code). `manifest` is the commit
log of a written dataset, which the sinks (`sluice.io.sinks`) extend exactly once per run and
the readers (`sluice.io.files`) follow, so a crashed write is never seen.
"""

from .retry import is_transient, retrying

__all__ = ["is_transient", "retrying"]

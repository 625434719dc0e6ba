"""Reliability: what keeps a job going, or failing cleanly, when the world misbehaves.

`quarantine` isolates bad rows into the dead-letter dataset and `repro` replays one.
`run_store` keeps what a write run needs to be resumed (its plan, input fingerprints,
finished tasks, exchange outputs); `driver.resume` finishes a crashed run from it. The
storage side of reliability lives with the storage code: `io.retry` rides out transient I/O
errors, `io.manifest` is the commit log that makes a write exactly-once.
"""

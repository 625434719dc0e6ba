"""Driving a run: from a logical plan to committed output, and back after a crash.

`run` optimizes and plans a query, picks the backend, runs the stages and records the run in
the run directory; `write` adds the sink's exactly-once commit. `resume` finishes a crashed
write run from its run store. `session` remembers what this process has run, for the CLI.
"""

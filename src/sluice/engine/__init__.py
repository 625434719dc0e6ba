"""The engine: every stage, chain, exchange, checkpoint and quarantine of a run, written once.

`stage_run.execute` drives a physical plan; `task.run_task` is the body of every task; a
backend (`backends/`) only submits tasks and holds blocks (`backend.Backend`).
"""

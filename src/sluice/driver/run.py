"""Running a logical plan: optimize it, plan its stages, run them on the configured backend,
and record the run where `sluice runs` finds it, while it runs and after a crash.

`run_blocks` yields a query's blocks; `write` runs a plan into a sink and commits it
exactly once, saving the plan to the run store first so a crashed run can be resumed (and
finishing only the commit when `resume` finds the crash came after the commit point).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterator

import pyarrow as pa

from ..backends import backend_for
from ..engine.context import RunContext
from ..engine.stage_run import execute
from ..errors import PreemptedError
from ..io.sinks import FileSink, WriteResult
from ..observe.history import record_run as record_in_history
from ..physical.planner import plan_physical
from ..plan.logical import LogicalNode, Write
from ..plan.optimizer import optimize
from ..reliability.run_store import RunStore
from . import session


def run_blocks(plan: LogicalNode, context: RunContext,
               commit: Callable[[], None] | None = None) -> Iterator[pa.Table]:
    """Run `plan`, yielding its blocks; `commit` runs once every block is out, as part of the run."""
    physical = plan_physical(optimize(plan), context.config)
    backend = backend_for(context.config)
    context.stats.physical_plan = physical
    session.runs.append(context.stats)
    started = time.perf_counter()
    config = context.config
    if context.store is not None:
        record_run(context)  # `sluice runs` lists it while it runs, and after a crash
    context.events.emit("run_start", run_id=context.run_id, pid=context.events.pid, host=context.events.host,
                        threads=config.num_threads, memory_budget=config.memory_budget, runner=config.runner)
    error = None
    try:
        for block in execute(physical, context, backend):
            context.stats.output_rows += block.num_rows
            yield block
        if commit is not None:
            commit()
        context.stats.status = "succeeded"
    except GeneratorExit:
        context.stats.status = "stopped early"
        raise
    except BaseException as exc:
        context.stats.status = "preempted" if isinstance(exc, PreemptedError) else "failed"
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        context.stats.wall_s = time.perf_counter() - started
        context.progress.close()
        context.events.emit("run_end", status=context.stats.status, wall_s=context.stats.wall_s, error=error)
        context.events.close()
        record_run(context)


def record_run(context: RunContext) -> None:
    """Write the run's run.json (a failure to is a note, never the run's failure)."""
    stats = context.stats
    try:
        record_in_history(context.run_dir, stats, context.config, resumable=context.store is not None,
                          earlier=context.earlier_attempts)
    except OSError as exc:
        stats.notes.append(f"could not record the run in {context.run_dir}: {exc}")
    if stats.bad_records:
        print(f"sluice: {stats.bad_records:,} bad record(s) were quarantined in run {stats.run_id} "
              f"({stats.bad_records_path}). `sluice bad-records {stats.run_id}` lists them.", file=sys.stderr)


def write(plan: LogicalNode, sink: FileSink, context: RunContext) -> WriteResult:
    """Run `plan` into `sink` and commit; a resumed `context` (same run id, its store) finishes a crashed run."""
    sink.validate(plan.schema)
    plan = Write(plan, sink)
    if context.resumed:
        if sink.committed(context.run_id):  # the crash came after the commit point: only finish it
            sink.prepare(context.run_id, context)
            result = sink.commit([])
            context.stats.note("the run had committed its output before it stopped; resume finished the commit")
            context.stats.status = "succeeded"
            context.store.finish()
            record_run(context)
            return result
        context.store.forget_tasks(sink.recover(context.run_id, context.store.staged()))
    elif context.config.checkpoint:
        store = RunStore.for_runner(context.store_dir, context.config.runner)
        problem = store.save_plan(plan)
        if problem is None:
            context.store = store
        else:
            context.stats.note(f"this run cannot be resumed after a crash: its plan cannot be saved ({problem})")
    sink.prepare(context.run_id, context)
    written: list[tuple[str, int, int]] = []
    results: list[WriteResult] = []

    def commit() -> None:
        results.append(sink.commit(written))
        context.stats.output_rows = sum(rows for _, rows, _ in written)
        context.stats.output_bytes = sum(size for _, _, size in written)
        if context.store is not None:
            context.store.finish(context.config.keep_exchanges)

    try:
        for block in run_blocks(plan, context, commit):
            written += [(r["path"], r["rows"], r["bytes"]) for r in block.to_pylist()]
    except PreemptedError:
        if context.store is None:  # not resumable: nothing will come back for the staged files
            sink.abort()
        raise
    except BaseException:
        sink.abort()
        raise
    return results[0]


def explain_plan(plan: LogicalNode) -> str:
    """The logical, optimized and physical plans of `plan`, as `explain()` prints them."""
    optimized = optimize(plan)
    return "\n".join([
        "== Logical plan ==", plan.tree_string(),
        "", "== Optimized plan ==", optimized.tree_string(),
        "", "== Physical plan ==", plan_physical(optimized).explain(),
    ])

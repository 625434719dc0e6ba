"""The body of every task, on every backend: a stage's operator chain over one item.

Why this module exists: a task builds its input block (a read task, slices of upstream
blocks, or a reducer over exchange pieces), runs the stage's operators over it, and hands
the result on: as one block, or partitioned into one piece per exchange partition (and, in a
resumable run, written to the run store). The local backend runs this in a pool thread, the
Ray backend in a Ray worker or an actor; the driver (stage_run.py, exchange.py) only
schedules. A task returns its data outputs and, last, a small `Report`: rows and bytes per
output, operator statistics, the worker's identity and the task's times, retries, a key
sample, hot keys, and the rows it quarantined. The driver folds reports into the run's stats,
events and dead-letter dataset (reporting.py), and takes its adaptive decisions from the
reported partition sizes without fetching data.

Bad rows are isolated here, where the block is (quarantine.py's bisection), and come back in
the report with their provenance; the driver writes them, so the run keeps one writer for its
dead-letter dataset and counts its error budget exactly across tasks.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl
import pyarrow as pa

from ..config import Config
from ..errors import CheckFailed, RemoteUserCodeError
from ..expr.types import polars_to_arrow
from ..io.retry import retrying
from ..kernels import user_code
from ..observe.events import set_current_block
from ..physical import holistic_split
from ..physical.checks import CheckStep
from ..physical.exchange import PartialAggregate, Partitioner, Reducer, sample_keys
from ..physical.operators import MapBatchesStep, Operator, PolarsStep, WriteStep, normalize_block
from ..reliability.quarantine import empty_output, error_text, is_row_error, isolate, replay_positions
from .checkpoint import Location, write_pieces


@dataclass(frozen=True)
class MapSpec:
    """How a task hands its output to an exchange: prepare it, sample its keys, partition it."""

    stage_id: int  # the exchange's (reading) stage, whose statistics the prepare and partition steps count in
    partitions: int
    partitioner: Partitioner
    prepare: Operator | None = None
    sample_keys: tuple[str, ...] | None = None
    save_to: Location | None = None  # a durable exchange's directory: the task writes its pieces there too
    schema: pa.Schema | None = None  # the exchange's schema, for the file


@dataclass(frozen=True)
class ChainSpec:
    """Everything a task needs besides its input; sent once per stage where tasks run elsewhere."""

    stage_id: int
    run_id: str
    config: Config
    operators: tuple[Operator, ...] = ()
    labels: tuple[str, ...] = ()  # the operators' names in the run's stats (Stage.operator_labels)
    first_index: int = 0  # position of operators[0] in the stage's chain (dead letters name operators by it)
    read_schema: pa.Schema | None = None
    finish: MapSpec | None = None
    reducer: Reducer | None = None
    input_schemas: tuple[pa.Schema, ...] = ()  # of a reducer's inputs, for the empty ones
    hide_gpus: bool = False  # a UDF asked for GPUs the cluster does not have: it sees none (CPU fallback)
    environ: tuple[tuple[str, str], ...] = ()  # the driver's storage variables, for tasks in other processes

    @property
    def outputs(self) -> int:
        return self.finish.partitions if self.finish is not None else 1


class UdfRunner(Protocol):
    """Where a backend runs map_batches steps other than in the task's own process."""

    def runs(self, step: MapBatchesStep) -> bool:
        """Whether this runner takes `step` (else the task calls the function itself)."""

    def run(self, step: MapBatchesStep, table: pa.Table, stage_id: int) -> pa.Table:
        """The step's function over one block (row positions already set aside), in stage `stage_id`."""

    def take_worker_cpu_s(self) -> float:
        """The CPU time other processes spent on this thread's `run` calls since the last take."""


@dataclass
class BadBatch:
    """Rows one operator failed on in one task, with a portable error each and their source rows."""

    op_index: int
    rows: pa.Table
    errors: list[BaseException]
    positions: pa.Table | None


def worker_identity() -> dict:
    """Where a task runs: node (on Ray), host, pid."""
    node = None
    ray = __import__("sys").modules.get("ray")
    if ray is not None and ray.is_initialized():
        try:
            node = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - outside a Ray worker
            node = None
    return {"node": node, "host": socket.gethostname(), "pid": os.getpid()}


@dataclass
class Report:
    """What a task tells the driver. It also stands in for RunStats inside the task (record, add_retry)."""

    stage: int
    node: str | None = None
    host: str = ""
    pid: int = 0
    thread: str = ""
    started: float = 0.0
    ended: float = 0.0
    rows: list[int] = field(default_factory=list)  # per data output
    bytes: list[int] = field(default_factory=list)
    ops: list[tuple] = field(default_factory=list)  # (stage, name, rows in, rows out, bytes in, bytes out, wall, cpu)
    input_bytes: int = 0
    reduce_rows: int | None = None  # rows a reduce task read
    retries: list[BaseException] = field(default_factory=list)
    bad: list[BadBatch] = field(default_factory=list)
    unreadable: list[tuple] = field(default_factory=list)  # (file, line, text, error) a reader could not decode
    sample: pa.Table | None = None  # sort keys sampled from the output, for range boundaries
    hot_keys: list[dict] = field(default_factory=list)
    slice_rows: list[int] = field(default_factory=list)  # a holistic split's rows per slice
    saved: tuple | None = None  # a durable exchange's map task: (its file, [partition, first batch, ...] per piece)
    checks: list = field(default_factory=list)  # data-quality checks' partials (physical/checks.py)
    written_rows: int = 0  # a write task's: rows it wrote into `files` files
    files: int = 0

    @property
    def output_rows(self) -> int:
        """The rows the task produced: a write task's are the rows it wrote (its block lists the files)."""
        return self.written_rows if self.files else sum(self.rows)

    @classmethod
    def started_now(cls, stage_id: int) -> Report:
        return cls(stage_id, **worker_identity(), thread=threading.current_thread().name, started=time.time())

    def record(self, stage_id, name, rows_in, rows_out, bytes_in, bytes_out, wall_s, cpu_s, files=0) -> None:
        self.ops.append((stage_id, name, rows_in, rows_out, bytes_in, bytes_out, wall_s, cpu_s, files))

    def add_retry(self, error: BaseException) -> None:
        self.retries.append(portable(error))

    def add_input(self, stored_bytes: int) -> None:
        self.input_bytes += stored_bytes

    def emit(self, event: str, **fields) -> None:
        """Events raised inside a task are not forwarded; the driver emits each task's start and end."""


_state = threading.local()


class BadInputSink:
    """The scan's `on_bad_input` inside a task: undecodable input goes into the running task's report."""

    def __call__(self, source_file: str, line: int | None, text: str | None, error: BaseException) -> None:
        report = getattr(_state, "report", None)
        if report is None:
            raise error
        report.unreadable.append((source_file, line, text, portable(error)))


def portable(error: BaseException) -> BaseException:
    """`error` if it survives pickling, else a stand-in with the same class name and message."""
    try:
        user_code.loads(user_code.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any pickling failure
        return type(type(error).__name__, (Exception,), {})(str(error))


# ---------------------------------------------------------------- one task

def run_task(spec: ChainSpec, kind: str, payload: Any, pieces: tuple, udfs: UdfRunner | None = None,
             block: str | None = None, bind: Callable[[Report], None] | None = None) -> list:
    """One task: build its input block, run the chain over it, hand the result on; outputs + [report].

    kinds: "read" (payload: a ReadTask), "blocks" (payload: a (first row, rows) cut or None per
    piece), "reduce" (payload: pieces per input, and the cut of a skewed partition's slice),
    "merge" (a holistic split's partials, see split_tasks.py). An exception leaves with the
    task's report attached as `task_report`, so the driver can log the task and its retries.
    `block` names the task in events raised while it runs; `bind` sees the report first (a
    backend binds the sinks of a chain it deserialized to the task's report).
    """
    report = Report.started_now(spec.stage_id)
    _state.report = report
    set_current_block(spec.stage_id, block)
    try:
        if bind is not None:
            bind(report)
        task = None
        if kind == "read":
            task = payload
            block = _read(spec, task, report)
        elif kind == "blocks":
            block = _gather(payload, pieces)
        elif kind == "reduce":
            block = _reduce(spec, payload, pieces, report)
        elif kind == "merge":
            block = merge_block(payload, pieces)
        else:
            raise ValueError(f"unknown task kind {kind!r}")
        pending = fused_into_prepare(spec)
        block = process(spec, block, report, task, udfs, len(spec.operators) - (pending is not None))
        if pending is not None:
            block = _prepare_after(spec, block, report, task)
        outputs = _finish(spec, block, report, prepared=pending is not None)
    except BaseException as exc:
        report.ended = time.time()
        try:
            exc.task_report = report  # type: ignore[attr-defined] - the driver logs the task, counts its retries
        except (AttributeError, TypeError):  # an exception class that takes no attributes
            pass
        raise
    finally:
        _state.report = None
        set_current_block(None, None)
    report.ended = time.time()
    return [*outputs, report]


def _read(spec: ChainSpec, task, report: Report) -> pa.Table:
    schema = spec.read_schema
    started, cpu_started = time.perf_counter(), time.thread_time()
    # the whole task is read inside the retried call, so a retry never repeats rows
    pieces = retrying(lambda: list(task.read()), spec.config, report, f"reading {task.description}")
    block = pa.concat_tables(pieces) if pieces else schema.empty_table()
    block = normalize_block(block, schema)
    report.add_input(task.input_bytes)
    report.record(spec.stage_id, "Scan", 0, block.num_rows, 0, block.nbytes, time.perf_counter() - started,
                  time.thread_time() - cpu_started)
    return block


def _gather(cuts: list, pieces: tuple) -> pa.Table:
    """The task's input: slices (offset, length; None for whole) of upstream blocks, concatenated."""
    parts = [table if cut is None else table.slice(*cut) for table, cut in zip(pieces, cuts)]
    if len(parts) == 1:
        return parts[0]
    return pa.concat_tables(parts, promote_options="permissive").combine_chunks()


def merge_block(payload, pieces: tuple) -> pa.Table:
    """The partition's aggregate from its slices' partials (and picked rank values)."""
    slices, ranked = payload
    split, output_schema = pieces[0], pieces[1]
    partials = list(pieces[2:2 + slices])
    picked = list(pieces[2 + slices:2 + 2 * slices]) if ranked else None
    return polars_to_arrow(holistic_split.merge(split, partials, picked, output_schema))


def concat_or_empty(tables: list, schema: pa.Schema) -> pa.Table:
    tables = [t for t in tables if t is not None]
    if not tables:
        return schema.empty_table()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")


def _reduce(spec: ChainSpec, payload, pieces: tuple, report: Report) -> pa.Table:
    counts, cut = payload  # pieces per input; cut: (input, first row, rows) of a skewed partition's slice
    inputs, at = [], 0
    for schema, count in zip(spec.input_schemas, counts):
        inputs.append(concat_or_empty(list(pieces[at:at + count]), schema))
        at += count
    if cut is not None:
        index, first, rows = cut
        inputs[index] = inputs[index].slice(first, rows)
    report.reduce_rows = sum(t.num_rows for t in inputs)
    reducer = spec.reducer
    return measured(report, spec.stage_id, reducer.name, report.reduce_rows, sum(t.nbytes for t in inputs),
                    lambda: reducer.reduce(inputs), lambda t: t.num_rows, lambda t: t.nbytes)


def fused_into_prepare(spec: ChainSpec) -> Operator | None:
    """The chain's last operator, when it is a PolarsStep that the exchange's partial aggregate can run
    in the same Polars query (the commonest map side: read, filter and project, aggregate)."""
    plan = spec.finish
    if plan is None or not spec.operators or not isinstance(plan.prepare, PartialAggregate):
        return None
    last = spec.operators[-1]
    return last if isinstance(last, PolarsStep) else None


def _prepare_after(spec: ChainSpec, block: pa.Table, report: Report, task) -> pa.Table:
    """The last PolarsStep and the partial aggregate in one query. Both get their rows in and out in
    the stats; the step's time is the aggregate's, the step's output is never materialized (0 bytes).
    If the query fails, the step runs alone, with quarantine, then the aggregate."""
    step, prepare = spec.operators[-1], spec.finish.prepare
    started, cpu_started = time.perf_counter(), time.thread_time()
    try:
        out, entered = prepare.after(step, block)
    except pl.exceptions.PolarsError:
        block = process(spec, block, report, task, start=len(spec.operators) - 1)
        return timed(report, spec.finish.stage_id, prepare, block)
    report.record(spec.stage_id, spec.labels[-1], block.num_rows, entered, block.nbytes, 0, 0.0, 0.0)
    report.record(spec.finish.stage_id, prepare.name, entered, out.num_rows, 0, out.nbytes,
                  time.perf_counter() - started, time.thread_time() - cpu_started)
    return out


def _finish(spec: ChainSpec, block: pa.Table, report: Report, prepared: bool = False) -> list:
    plan = spec.finish
    if plan is None:
        report.rows, report.bytes = [block.num_rows], [block.nbytes]
        return [block]
    if plan.prepare is not None and not prepared:
        block = timed(report, plan.stage_id, plan.prepare, block)
    if plan.sample_keys:
        report.sample = sample_keys(block, list(plan.sample_keys))
    pieces = measured(report, plan.stage_id, "Partition", block.num_rows, block.nbytes,
                      lambda: plan.partitioner.assign(block, plan.partitions),
                      lambda ps: sum(p.num_rows for _, p in ps), lambda ps: sum(p.nbytes for _, p in ps))
    outputs: list[pa.Table | None] = [None] * plan.partitions
    for partition, piece in pieces:
        outputs[partition] = piece
    report.rows = [0 if t is None else t.num_rows for t in outputs]
    report.bytes = [0 if t is None else t.nbytes for t in outputs]
    if plan.save_to is not None:
        report.saved = write_pieces(plan.save_to, plan.schema, outputs)
    return outputs


# ---------------------------------------------------------------- operators and quarantine

def measured(report: Report, stage_id: int, name: str, rows_in: int, bytes_in: int, action, rows_out, bytes_out,
             worker_cpu_s: Callable[[], float] | None = None):
    started, cpu_started = time.perf_counter(), time.thread_time()
    result = action()
    cpu_s = time.thread_time() - cpu_started + (worker_cpu_s() if worker_cpu_s is not None else 0.0)
    report.record(stage_id, name, rows_in, rows_out(result), bytes_in, bytes_out(result),
                  time.perf_counter() - started, cpu_s)
    return result


def timed(report: Report, stage_id: int, operator, block: pa.Table, label: str | None = None,
          apply: Callable[[pa.Table], pa.Table] | None = None,
          worker_cpu_s: Callable[[], float] | None = None) -> pa.Table:
    apply = apply or operator.apply
    if isinstance(operator, WriteStep):
        return _timed_write(report, stage_id, operator, block, label, apply)
    return measured(report, stage_id, label or operator.name, block.num_rows, block.nbytes, lambda: apply(block),
                    lambda t: t.num_rows, lambda t: t.nbytes, worker_cpu_s)


def _timed_write(report: Report, stage_id: int, operator, block: pa.Table, label: str | None, apply) -> pa.Table:
    """A write's figures are what it wrote: rows and file bytes, and how many files (its output is one row a file)."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    written = apply(block)
    rows, size = sum(written.column("rows").to_pylist()), sum(written.column("bytes").to_pylist())
    report.record(stage_id, label or operator.name, block.num_rows, rows, block.nbytes, size,
                  time.perf_counter() - started, time.thread_time() - cpu_started, written.num_rows)
    report.written_rows += rows
    report.files += written.num_rows
    return written


def operator_call(operator: Operator, udfs: UdfRunner | None, stage_id: int) -> Callable[[pa.Table], pa.Table]:
    """How this task applies `operator`: in the task, or through the backend's UdfRunner."""
    if udfs is not None and isinstance(operator, MapBatchesStep) and udfs.runs(operator):
        return lambda table: operator.apply_with(table, lambda t: udfs.run(operator, t, stage_id))
    return operator.apply


def process(spec: ChainSpec, block: pa.Table, report: Report, task=None, udfs: UdfRunner | None = None,
            end: int | None = None, start: int = 0) -> pa.Table:
    """Run the chain (operators start..end) over the block; rows an operator fails on go into the report
    (on_error='quarantine')."""
    for offset, operator in list(enumerate(spec.operators))[start:end]:
        if isinstance(operator, CheckStep):
            block = _check(spec, report, offset, operator, block, task)
            continue
        apply = operator_call(operator, udfs, spec.stage_id)
        in_workers = udfs is not None and isinstance(operator, MapBatchesStep) and udfs.runs(operator)
        try:
            block = timed(report, spec.stage_id, operator, block, spec.labels[offset], apply,
                          udfs.take_worker_cpu_s if in_workers else None)
        except Exception as exc:
            if not (is_row_error(exc) and spec.config.on_error == "quarantine"):
                raise
            block = _quarantine(spec, report, offset, operator, apply, block, task, exc)
    return block


def _quarantine(spec: ChainSpec, report: Report, offset: int, operator, apply, block: pa.Table, task,
                error: Exception) -> pa.Table:
    started, cpu_started = time.perf_counter(), time.thread_time()
    outputs, bad = isolate(apply, block, error)
    result = pa.concat_tables(outputs, promote_options="permissive") if outputs else \
        empty_output(operator, block, error)
    report.record(spec.stage_id, spec.labels[offset], block.num_rows, result.num_rows, block.nbytes, result.nbytes,
                  time.perf_counter() - started, time.thread_time() - cpu_started)
    picks = pa.array([row.index for row in bad], pa.int64())
    positions = None
    if task is not None and spec.first_index == 0:
        positions = replay_positions(task, spec.read_schema, spec.operators[:offset], block.num_rows)
    report.bad.append(BadBatch(spec.first_index + offset, block.take(picks), [dead_letter_error(r.error) for r in bad],
                               positions.take(picks) if positions is not None else None))
    return result


def _check(spec: ChainSpec, report: Report, offset: int, step: CheckStep, block: pa.Table, task) -> pa.Table:
    """A data-quality check over the block: its partial goes in the report; rows a quarantining check
    rejects go to the dead letters, with the check's name, like any bad record."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    kept, failing, partial = step.evaluate(block)
    report.checks.append(partial)
    report.record(spec.stage_id, spec.labels[offset], block.num_rows, kept.num_rows, block.nbytes, kept.nbytes,
                  time.perf_counter() - started, time.thread_time() - cpu_started)
    if kept.num_rows < block.num_rows:
        picks = pa.array(failing, pa.int64())
        positions = None
        if task is not None and spec.first_index == 0:
            positions = replay_positions(task, spec.read_schema, spec.operators[:offset], block.num_rows)
        error = dead_letter_error(CheckFailed(f"failed the data-quality check {step.check.name!r}: "
                                              f"{step.check.predicate!r}"))
        report.bad.append(BadBatch(spec.first_index + offset, block.take(picks), [error] * len(failing),
                                   positions.take(picks) if positions is not None else None))
    return kept


def dead_letter_error(error: BaseException) -> BaseException:
    """What the dead-letter record needs of an error (type, message, traceback), in a form that pickles."""
    kind, message, trace = error_text(error)
    return RemoteUserCodeError(str(error), exc_type=kind, exc_message=message, remote_traceback=trace,
                               worker_pid=os.getpid())

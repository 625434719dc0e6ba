"""What runs inside Ray workers: a stage's operator chain over one item, and exchange steps.

Why this module exists: the driver (executor.py, exchange.py) only schedules; every block is
touched here, in Ray worker processes. A task returns each of its data outputs as its own
object (a block, or one piece per exchange partition, which stay in the object store where
the next task reads them) and, last, a small `Report`: rows and bytes per output, operator
statistics, the worker's node, host and pid and the task's times, retries, a key sample, hot
keys, and the rows it quarantined. The driver folds reports into the run's stats, events and
dead-letter dataset, and takes its adaptive decisions from reported partition sizes without
fetching any data.

Bad rows are isolated here, where the block is (reliability/quarantine.py's bisection), and
come back in the report with their provenance; the driver writes them. The driver, because:
the run keeps one writer for its dead-letter dataset (the same files and budget checks as the
local runner), the error budget is counted exactly across tasks, and the runs directory need
not be shared storage. The budget keeps bad rows few, so shipping them is cheap.

A task runs under the driver's settings (`Config`), installed for its duration, so that code
which reads the current configuration (retries, transient-error names) sees the run's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ... import config as config_module
from ... import user_code
from ...config import Config
from ...errors import RemoteUserCodeError, UdfTaskError, UserCodeError
from ...plan.exchange import Partitioner, Reducer, sample_keys
from ...plan.operators import Operator, WriteStep, normalize_block
from ...reliability.quarantine import empty_output, error_text, is_row_error, isolate, replay_positions
from ...reliability.retry import retrying
from .cluster import worker_identity


@dataclass(frozen=True)
class MapSpec:
    """How a task hands its output to an exchange: prepare it, sample its keys, partition it."""

    stage_id: int  # the exchange's (reading) stage, whose statistics the prepare and partition steps count in
    partitions: int
    partitioner: Partitioner
    prepare: Operator | None = None
    sample_keys: tuple[str, ...] | None = None
    save_to: Any = None  # a durable exchange's persist.Location: the task writes its pieces there too
    schema: pa.Schema | None = None  # the exchange's schema, for the file


@dataclass(frozen=True)
class ChainSpec:
    """Everything a task needs besides its input: sent once per stage through the object store."""

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
    environ: tuple[tuple[str, str], ...] = ()  # the driver's storage variables, on a one-machine cluster

    @property
    def outputs(self) -> int:
        return self.finish.partitions if self.finish is not None else 1


@dataclass
class BadBatch:
    """Rows one operator failed on in one task, with a portable error each and their source rows."""

    op_index: int
    rows: pa.Table
    errors: list[BaseException]
    positions: pa.Table | None


@dataclass
class Report:
    """What a task tells the driver. It also stands in for RunStats inside the task (record, add_retry)."""

    stage: int
    node: str | None = None
    host: str = ""
    pid: int = 0
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

    def record(self, stage_id, name, rows_in, rows_out, bytes_in, bytes_out, wall_s, cpu_s) -> None:
        self.ops.append((stage_id, name, rows_in, rows_out, bytes_in, bytes_out, wall_s, cpu_s))

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


def _pickled(error: BaseException) -> bytes | None:
    try:
        return user_code.dumps(error)
    except Exception:  # noqa: BLE001 - any pickling failure
        return None


# ---------------------------------------------------------------- one task

@contextlib.contextmanager
def _driver_settings(spec: ChainSpec):
    """The driver's configuration (and environment overlay) for the duration of one task."""
    saved = dict(config_module._overrides)
    config_module._overrides.clear()
    config_module._overrides.update({f.name: getattr(spec.config, f.name) for f in dataclasses.fields(spec.config)})
    overlay = dict(spec.environ)
    if spec.hide_gpus:
        overlay["CUDA_VISIBLE_DEVICES"] = ""
    environ = {name: os.environ.get(name) for name in overlay}
    os.environ.update(overlay)
    try:
        yield
    finally:
        config_module._overrides.clear()
        config_module._overrides.update(saved)
        for name, value in environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _bind_sinks(operators, run_id: str, config: Config, report: Report) -> None:
    """A sink pickles as configured, before any run (FileSink.__getstate__): give it back this run's id,
    settings, and the task's report as the stats its retries count in."""
    for operator in operators:
        if isinstance(operator, WriteStep):
            sink = operator.sink
            bind = getattr(sink, "bind_run", None)
            if bind is not None:
                bind(run_id, config, report)
            else:
                sink._run_id, sink._config, sink._stats = run_id, config, report


def run_task(spec: ChainSpec, kind: str, payload: Any, pieces: tuple, prepare_ops: Callable | None = None) -> list:
    """One task: build its input block, run the chain over it, hand the result on; outputs + [report]."""
    report = Report(spec.stage_id, **worker_identity(), started=time.time())
    _state.report = report
    try:
        with _driver_settings(spec):
            _bind_sinks(spec.operators, spec.run_id, spec.config, report)
            if prepare_ops is not None:
                prepare_ops(spec.operators)
            task = None
            if kind == "read":
                task = payload
                block = _read(spec, task, report)
            elif kind == "blocks":
                block = _gather(payload, pieces)
            elif kind == "reduce":
                block = _reduce(spec, payload, pieces, report)
            elif kind == "merge":
                from .holistic import merge_block
                block = merge_block(payload, pieces)
            else:
                raise ValueError(f"unknown task kind {kind!r}")
            block = process(spec, block, report, task)
            outputs = _finish(spec, block, report)
    except Exception as exc:
        failure = portable_failure(exc)
        report.ended = time.time()
        with contextlib.suppress(AttributeError, TypeError):  # an exception class that takes no attributes
            failure.task_report = report  # type: ignore[attr-defined] - the driver logs the task, counts its retries
        raise failure from None
    finally:
        _state.report = None
    report.ended = time.time()
    return [*outputs, report]


def stage_task(spec: ChainSpec, kind: str, payload: Any, *pieces) -> list:
    return run_task(spec, kind, payload, pieces)


def portable_failure(exc: BaseException) -> BaseException:
    """User code's exception with its traceback as text: a live traceback does not cross processes."""
    if isinstance(exc, UserCodeError) and not isinstance(exc, RemoteUserCodeError) and exc.__cause__ is not None:
        kind, message, trace = error_text(exc)
        head = str(exc).split("\n  The function's own traceback")[0]
        error = UdfTaskError(f"{head}\n  Its traceback, from Ray worker pid {os.getpid()}:\n"
                             f"{textwrap.indent(trace.rstrip(), '    ')}",
                             exc_type=kind, exc_message=message, remote_traceback=trace, worker_pid=os.getpid())
        error.info = {"pickled": _pickled(exc.__cause__)}  # type: ignore[attr-defined] - the driver's __cause__
        return error
    error = portable(exc)
    if exc.__cause__ is not None and error is exc:
        exc.remote_cause = _pickled(exc.__cause__)  # type: ignore[attr-defined] - the driver's __cause__
    return error


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


def _gather(slices: list, pieces: tuple) -> pa.Table:
    """The task's input: slices (offset, length; None for whole) of upstream blocks, concatenated."""
    parts = [table if cut is None else table.slice(*cut) for table, cut in zip(pieces, slices)]
    if len(parts) == 1:
        return parts[0]
    return pa.concat_tables(parts, promote_options="permissive").combine_chunks()


def _reduce(spec: ChainSpec, payload, pieces: tuple, report: Report) -> pa.Table:
    counts, cut = payload  # pieces per input; cut: (input, first row, rows) of a skewed partition's slice
    inputs, at = [], 0
    for schema, count in zip(spec.input_schemas, counts):
        tables = [t for t in pieces[at:at + count] if t is not None]
        at += count
        inputs.append(pa.concat_tables(tables, promote_options="permissive") if tables else schema.empty_table())
    if cut is not None:
        index, first, rows = cut
        inputs[index] = inputs[index].slice(first, rows)
    report.reduce_rows = sum(t.num_rows for t in inputs)
    reducer = spec.reducer
    return measured(report, spec.stage_id, reducer.name, report.reduce_rows, sum(t.nbytes for t in inputs),
                    lambda: reducer.reduce(inputs), lambda t: t.num_rows, lambda t: t.nbytes)


def _finish(spec: ChainSpec, block: pa.Table, report: Report) -> list:
    plan = spec.finish
    if plan is None:
        report.rows, report.bytes = [block.num_rows], [block.nbytes]
        return [block]
    if plan.prepare is not None:
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
        from .persist import write_pieces
        report.saved = write_pieces(plan.save_to, plan.schema, outputs)
    return outputs


# ---------------------------------------------------------------- operators and quarantine

def measured(report: Report, stage_id: int, name: str, rows_in: int, bytes_in: int, action, rows_out, bytes_out):
    started, cpu_started = time.perf_counter(), time.thread_time()
    result = action()
    report.record(stage_id, name, rows_in, rows_out(result), bytes_in, bytes_out(result),
                  time.perf_counter() - started, time.thread_time() - cpu_started)
    return result


def timed(report: Report, stage_id: int, operator, block: pa.Table, label: str | None = None) -> pa.Table:
    return measured(report, stage_id, label or operator.name, block.num_rows, block.nbytes,
                    lambda: operator.apply(block),
                    lambda t: t.num_rows, lambda t: t.nbytes)


def process(spec: ChainSpec, block: pa.Table, report: Report, task=None) -> pa.Table:
    """Run the chain over the block; rows an operator fails on go into the report (on_error='quarantine')."""
    for offset, operator in enumerate(spec.operators):
        try:
            block = timed(report, spec.stage_id, operator, block, spec.labels[offset])
        except Exception as exc:
            if not (is_row_error(exc) and spec.config.on_error == "quarantine"):
                raise
            block = _quarantine(spec, report, offset, operator, block, task, exc)
    return block


def _quarantine(spec: ChainSpec, report: Report, offset: int, operator, block: pa.Table, task,
                error: Exception) -> pa.Table:
    started, cpu_started = time.perf_counter(), time.thread_time()
    outputs, bad = isolate(operator.apply, block, error)
    result = pa.concat_tables(outputs, promote_options="permissive") if outputs else \
        empty_output(operator, block, error)
    report.record(spec.stage_id, spec.labels[offset], block.num_rows, result.num_rows, block.nbytes, result.nbytes,
                  time.perf_counter() - started, time.thread_time() - cpu_started)
    picks = pa.array([row.index for row in bad], pa.int64())
    positions = None
    if task is not None and spec.first_index == 0:
        positions = replay_positions(task, spec.read_schema, spec.operators[:offset], block.num_rows)
    report.bad.append(BadBatch(spec.first_index + offset, block.take(picks), [_dead_letter_error(r.error) for r in bad],
                               positions.take(picks) if positions is not None else None))
    return result


def _dead_letter_error(error: BaseException) -> BaseException:
    """What the dead-letter record needs of an error (type, message, traceback), in a form that pickles."""
    kind, message, trace = error_text(error)
    return RemoteUserCodeError(str(error), exc_type=kind, exc_message=message, remote_traceback=trace,
                               worker_pid=os.getpid())


# ---------------------------------------------------------------- remote functions

def hot_keys_task(stage: int, keys: list[str], *pieces) -> list[dict]:
    from ...plan.adaptive import hot_keys
    tables = [t for t in pieces if t is not None]
    return hot_keys(pa.concat_tables(tables, promote_options="permissive"), keys, stage) if tables else []


@functools.cache
def remote(name: str):
    """The Ray remote function for one of this module's task bodies (made on first use: Ray is optional)."""
    import ray

    from . import holistic, persist
    fn = globals().get(name) or getattr(holistic, name, None) or getattr(persist, name)
    return ray.remote(fn)

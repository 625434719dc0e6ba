"""What a Ray worker runs: the engine's task bodies, under the driver's settings, with portable failures.

Why this module exists: a task in a Ray worker is another process, perhaps on another machine.
It runs `engine.task.run_task` (or a split_tasks.py body) exactly as a local task does, with
three things around it that only another process needs: the driver's settings (`Config`)
installed for the task's duration, so code that reads the current configuration (retries,
transient-error names) sees the run's; sinks bound to the run (they pickle without it); and
failures made portable, since a live traceback does not cross processes (user code's error
travels with its traceback as text and, when it pickles, the exception itself).
"""

from __future__ import annotations

import contextlib
import functools
import os
import textwrap

from ... import config as config_module
from ...engine.checkpoint import read_ranges
from ...engine.split_tasks import TASK_BODIES
from ...engine.task import ChainSpec, portable, run_task
from ...errors import RemoteUserCodeError, UdfTaskError, UserCodeError
from ...kernels import user_code
from ...physical.operators import WriteStep
from ...reliability.quarantine import error_text


@contextlib.contextmanager
def driver_settings(spec: ChainSpec):
    """The driver's configuration (and environment overlay) for the duration of one task."""
    overlay = dict(spec.environ)
    if spec.hide_gpus:
        overlay["CUDA_VISIBLE_DEVICES"] = ""
    environ = {name: os.environ.get(name) for name in overlay}
    os.environ.update(overlay)
    try:
        with config_module.installed(spec.config):
            yield
    finally:
        for name, value in environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bind_sinks(spec: ChainSpec, report) -> None:
    """A sink pickles as configured, before any run (FileSink.__getstate__): give it back this run's id,
    settings, and the task's report as the stats its retries count in."""
    for operator in spec.operators:
        if isinstance(operator, WriteStep):
            operator.sink.bind_run(spec.run_id, spec.config, report)


def chain_task(spec: ChainSpec, kind: str, payload, block: str, pieces: tuple, udfs=None) -> list:
    """run_task in a Ray worker (or actor), with the driver's settings; its failure made portable."""
    try:
        with driver_settings(spec):
            return run_task(spec, kind, payload, pieces, udfs, block, bind=lambda report: bind_sinks(spec, report))
    except Exception as exc:
        report = getattr(exc, "task_report", None)
        failure = portable_failure(exc)
        with contextlib.suppress(AttributeError, TypeError):  # an exception class that takes no attributes
            failure.task_report = report  # type: ignore[attr-defined] - the driver logs the task, counts its retries
        raise failure from None


def stage_task(spec: ChainSpec, kind: str, payload, block: str, *pieces) -> list:
    return chain_task(spec, kind, payload, block, pieces)


def call_body(name: str, returns: int, *args):
    results = TASK_BODIES[name](*args)
    return results[0] if returns == 1 else results


def load_partition(location, found, schema):
    """A persisted partition loaded into the object store (checkpoint.py's ranges of its files)."""
    return read_ranges(location, found, schema)


def portable_failure(exc: BaseException) -> BaseException:
    """User code's exception with its traceback as text: a live traceback does not cross processes."""
    if isinstance(exc, UserCodeError) and not isinstance(exc, RemoteUserCodeError) and exc.__cause__ is not None:
        kind, message, trace = error_text(exc)
        head = str(exc).split("\n  The function's own traceback")[0]
        error = UdfTaskError(f"{head}\n  Its traceback, from Ray worker pid {os.getpid()}:\n"
                             f"{textwrap.indent(trace.rstrip(), '    ')}",
                             exc_type=kind, exc_message=message, remote_traceback=trace, worker_pid=os.getpid())
        error.info = {"pickled": pickled(exc.__cause__)}  # type: ignore[attr-defined] - the driver's __cause__
        return error
    error = portable(exc)
    if exc.__cause__ is not None and error is exc:
        exc.remote_cause = pickled(exc.__cause__)  # type: ignore[attr-defined] - the driver's __cause__
    return error


def pickled(error: BaseException) -> bytes | None:
    try:
        return user_code.dumps(error)
    except Exception:  # noqa: BLE001 - any pickling failure
        return None


@functools.cache
def remote(name: str):
    """The Ray remote function for one of this module's task bodies (made on first use: Ray is optional)."""
    import ray
    return ray.remote(globals()[name])

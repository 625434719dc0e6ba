"""The one error hierarchy of sluice.

Every error sluice raises on purpose derives from `SluiceError`, so a caller can catch them
all in one place. Each message names the thing that is wrong (the column, the file, the
stage) and says how to fix it. Helpers here build those messages consistently.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class SluiceError(Exception):
    """Base class of every error sluice raises on purpose."""


class PlanError(SluiceError):
    """The pipeline cannot be planned: it is wrong before any data is read."""


class ColumnNotFoundError(PlanError):
    """An expression names a column the input does not have."""


class ExpressionTypeError(PlanError):
    """An expression applies an operation to a type it does not fit."""


class ExpressionEvaluationError(ExpressionTypeError):
    """An expression failed on the values of a block (a cast that does not fit, say)."""


class SourceError(SluiceError):
    """An input cannot be read: missing, corrupt, or inconsistent."""


class SourceNotFoundError(SourceError):
    """A path or glob matches no file."""


class CorruptFileError(SourceError):
    """A file cannot be decoded as the format it claims to be."""


class SchemaMismatchError(SourceError):
    """Two input files disagree on the schema."""


class UserCodeError(SluiceError):
    """User code (a map_batches function) raised, or returned something unusable."""


class UdfOutputError(UserCodeError):
    """A UDF returned the wrong type or the wrong number of rows."""


class SinkError(SluiceError):
    """Output cannot be written where or how it was asked."""


class CommitConflictError(SinkError):
    """Other writers kept committing to the same destination, so this write could not take its turn."""


class RunnerError(SluiceError):
    """The requested runner is unknown or unavailable."""


class TooManyBadRecordsError(SluiceError):
    """More rows failed than `max_bad_records` allows; the failures are in the dead-letter dataset."""


class TransientError(SluiceError):
    """An operation kept failing with a transient error (I/O, timeout) after every retry."""


def format_schema(schema) -> str:
    """Render an Arrow schema as indented `name: type` lines for error messages."""
    return "\n".join(f"    {field.name}: {field.type}" for field in schema)


def close_matches(name: str, candidates: Iterable[str]) -> list[str]:
    candidates = list(candidates)
    matches = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    lowered = [c for c in candidates if c.lower() == name.lower() and c not in matches]
    return lowered + matches


def column_not_found(name: str, schema, context: str = "") -> ColumnNotFoundError:
    suggestions = close_matches(name, schema.names)
    hint = f" Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    where = "" if not context else f" {context}" if context.startswith("in ") else f" in {context}"
    return ColumnNotFoundError(
        f"Column {name!r} does not exist{where}.{hint}\n"
        f"  The input has these columns:\n{format_schema(schema)}"
    )


class RemoteUserCodeError(UserCodeError):
    """User code raised in a UDF worker process. Carries what the worker saw.

    `exc_type` and `exc_message` name the user's exception; `remote_traceback` is its traceback
    text with sluice's frames trimmed; `worker_pid` is the process it ran in. The original
    exception, if it could be sent back, is the `__cause__`.
    """

    def __init__(self, message: str, *, exc_type: str = "", exc_message: str = "", remote_traceback: str = "",
                 worker_pid: int | None = None, task_id: int | None = None, rows: int | None = None):
        super().__init__(message)
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.remote_traceback = remote_traceback
        self.worker_pid = worker_pid
        self.task_id = task_id
        self.rows = rows

    def __reduce__(self):
        return (self.__class__, (str(self),), self.__dict__)


class UdfInitError(RemoteUserCodeError):
    """A map_batches UDF could not start in a worker: `__init__` raised, or it could not be sent there."""


class UdfTaskError(RemoteUserCodeError):
    """A map_batches UDF raised on a block in a worker process."""


class WorkerError(SluiceError):
    """A UDF worker pool failed for a reason other than the user's code raising: a crash, or a closed pool."""


class WorkerCrashedError(WorkerError):
    """A UDF worker process died (e.g. killed by the OOM killer) on a task more times than retries allow.

    `deaths` lists each death (workers.WorkerDeath: exit signal, task, last known RSS).
    """

    def __init__(self, message: str, deaths: list | None = None):
        super().__init__(message)
        self.deaths = list(deaths or [])

    def __reduce__(self):
        return (self.__class__, (str(self), self.deaths))


class CheckFailed(SluiceError):
    """A row failed a data-quality check that quarantines (the dead letters hold it with the check's name)."""


class DataQualityError(SluiceError):
    """A data-quality check with action="fail" failed; the run stopped before it committed anything."""


class PreemptedError(SluiceError):
    """The run was asked to stop (SIGTERM: a spot instance's notice, a scheduler's) and stopped after its
    running tasks finished; what it finished is kept, and `sluice resume RUN` goes on from there."""

    exit_status = 75  # EX_TEMPFAIL: try again later; `sluice run` exits with it

    def __init__(self, message: str, run_id: str = ""):
        super().__init__(message)
        self.run_id = run_id

    def __reduce__(self):
        return (self.__class__, (str(self), self.run_id))


class ResumeError(SluiceError):
    """A run cannot be resumed: it is not resumable, already done, still running, or its inputs changed."""

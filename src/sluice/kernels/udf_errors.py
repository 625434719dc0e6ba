"""User code's errors across processes: described in the worker, rebuilt where the run is driven.

Why this module exists: a UDF raises in a worker process or a Ray actor, and the user must
see their own exception, type, message and traceback, in the driver. The worker describes the
exception as builtins (`describe_exception`: type name, message, traceback text with sluice's
leading frames trimmed, the pickled exception when it pickles, the pid); the driver builds a
SluiceError from that description, whose message holds the traceback after a one-line
summary and whose cause is the user's exception where it unpickled. Both backends use it.
"""

from __future__ import annotations

import os
import pickle
import textwrap
import traceback

from ..errors import SluiceError, UdfInitError
from . import user_code
from .udf import trim_internal_frames


def describe_exception(exc: BaseException, user: bool = True) -> dict:
    """What the parent needs to rebuild an error: type, message, traceback text, the exception if it pickles."""
    if user:
        exc = trim_internal_frames(exc)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        message = str(exc)
    except Exception:
        message = f"<{type(exc).__name__}: str() failed>"
    try:
        pickled = user_code.dumps(exc)
    except Exception:
        pickled = None
    return {"type": type(exc).__name__, "module": type(exc).__module__, "message": message, "traceback": text,
            "pickled": pickled, "sluice": isinstance(exc, SluiceError), "pid": os.getpid()}


def traceback_block(text: str) -> str:
    return f"\n  Its traceback, from the worker:\n{textwrap.indent(text.rstrip(), '    ')}" if text else ""


def init_error(info: dict, what: str, is_class: bool) -> UdfInitError:
    """The UDF could not start in a worker. `what` is e.g. "class Scorer"."""
    phase = info.get("phase", "init")
    if phase == "load":
        head = (f"map_batches {what} could not be loaded in a worker process (pid {info.get('pid')}): "
                f"{info['type']}: {info['message']}\n  A module it needs may not be importable there; for a "
                f"module loaded from a file path, call cloudpickle.register_pickle_by_value(module).")
    elif phase == "start":
        head = f"map_batches {what}: a worker process could not start: {info['message']}"
    else:
        head = (f"map_batches {what} raised {info['type']} in {'__init__' if is_class else 'setup'} in a worker "
                f"process (pid {info.get('pid')}): {info['message']}")
    text = info.get("traceback") or ""
    error = UdfInitError(f"{head}{traceback_block(text)}\n  The pool is stopped; no block was processed.",
                         exc_type=info["type"], exc_message=info["message"], remote_traceback=text,
                         worker_pid=info.get("pid"))
    error.__cause__ = unpickle_exception(info.get("pickled"))
    error.info = info  # type: ignore[attr-defined]
    return error


def unpickle_exception(data: bytes | None) -> BaseException | None:
    if not data:
        return None
    try:
        value = pickle.loads(data)
    except Exception:
        return None
    return value if isinstance(value, BaseException) else None

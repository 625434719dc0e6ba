"""Pickling user code so that its tracebacks still point at the user's source, in any process.

Why this module exists: cloudpickle sends a function or class defined in a script (`__main__`
under `sluice run`, a module loaded from a path, a notebook cell) by value, field by field of
its code objects. Since cloudpickle 3.1.3 it replaces each code object's file name with
"<dynamic-code>" (for deterministic payloads), so an exception raised in a UDF worker process
or a Ray task read `File "<dynamic-code>", line 12` with no source text. The fix lives here,
not in a pin: `dumps` ships every code object that cloudpickle would send by value whole
(marshal keeps all of its fields, the file name and the line table among them), together with
the source lines it spans; `restore_code` puts those lines into `linecache` wherever the
process cannot read the file itself (a Ray node without the script, a script deleted since),
so the traceback shows the user's file, line and source text.

Both sides run the same Python minor version, as cloudpickle's by-value code objects require
anyway; a code object marshal cannot hold goes through cloudpickle's own reducer.
"""

from __future__ import annotations

import io
import linecache
import marshal
import pickle
import types

import cloudpickle


class SourceKeepingPickler(cloudpickle.Pickler):
    """cloudpickle, except that code objects keep their file name and carry their source lines."""

    def reducer_override(self, obj):
        if type(obj) is types.CodeType:
            try:
                blob = marshal.dumps(obj)
            except ValueError:  # a constant marshal cannot hold: cloudpickle's reducer handles it
                return super().reducer_override(obj)
            first, lines = source_lines(obj)
            return restore_code, (blob, first, lines)
        return super().reducer_override(obj)


def dumps(value) -> bytes:
    """Pickle `value` (user functions, classes and everything they reach) with source-keeping code."""
    buffer = io.BytesIO()
    SourceKeepingPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


loads = pickle.loads  # restore_code does the loading side's work; nothing else differs


def source_lines(code: types.CodeType) -> tuple[int, tuple[str, ...]]:
    """The first line number of `code` and its source lines (nested functions' lines included)."""
    first = code.co_firstlineno
    last = _last_line(code)
    lines = linecache.getlines(code.co_filename)
    return first, tuple(lines[first - 1:last])


def _last_line(code: types.CodeType) -> int:
    last = max((line for _, _, line in code.co_lines() if line is not None), default=code.co_firstlineno)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            last = max(last, _last_line(constant))
    return last


def restore_code(blob: bytes, first: int, lines: tuple[str, ...]) -> types.CodeType:
    """Rebuild a code object; where its file cannot be read here, serve its lines from `linecache`."""
    code = marshal.loads(blob)
    if lines and not linecache.getline(code.co_filename, first):
        remember_lines(code.co_filename, first, lines)
    return code


def remember_lines(filename: str, first: int, lines: tuple[str, ...]) -> None:
    """Put `lines` at line `first` of `filename` into linecache, beside lines remembered before.

    An entry whose modification time is None is one linecache never checks against the disk
    (the form it uses for source that came from a loader), so it stays for the process's life.
    """
    entry = linecache.cache.get(filename)
    known = list(entry[2]) if entry is not None and len(entry) == 4 and entry[1] is None else []
    end = first - 1 + len(lines)
    known.extend("\n" for _ in range(end - len(known)))
    known[first - 1:end] = lines
    linecache.cache[filename] = (sum(map(len, known)), None, known, filename)

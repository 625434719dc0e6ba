"""Memory profiles of UDFs: what one task of an operator needed in earlier runs, keyed by its code.

Why this module exists: a UDF's memory per task is rarely declared, so each run measures it
(the peak RSS growth of a worker per task) and saves the largest under
`<runs dir>/_profiles/<fingerprint>.json`; the next run of the same operator sizes its pool
from it, on this machine (backends/local/udf_pools.py) and on Ray, where it becomes the
actors' `memory` resource (backends/ray/actors.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re

import pyarrow as pa

PROFILE_DIR = "_profiles"


def fingerprint(node, input_schema: pa.Schema) -> str:
    """Same function code, options and input schema: same fingerprint, in any process.

    Code objects nested in the function (comprehensions before Python 3.12, lambdas, inner
    functions) are hashed by their contents: their repr holds a memory address, which differs
    from one process to the next, and would make every run look like a new operator.
    """
    fn = node.fn
    parts = [getattr(fn, "__module__", ""), node.fn_name, node.batch_format, str(node.batch_size),
             _stable_repr(node.fn_kwargs), str(input_schema)]
    while isinstance(fn, functools.partial):  # partial(score, model="a") and partial(score, model="b") differ
        parts.append(_stable_repr((fn.args, sorted(fn.keywords.items()))))
        fn = fn.func
        parts.append(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}")
    if isinstance(fn, type):
        targets = [getattr(fn, "__init__", None), getattr(fn, "__call__", None)]
    elif hasattr(fn, "__code__"):
        targets = [fn]
    else:  # an instance of a callable class: its class's code
        targets = [getattr(type(fn), "__call__", None)]
        parts.append(f"{type(fn).__module__}.{type(fn).__qualname__}")
    for target in targets:
        code = getattr(target, "__code__", None)
        if code is not None:
            parts.append(_code_digest(code))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _stable_repr(value) -> str:
    """repr without memory addresses ("<object at 0x7f...>" differs between processes)."""
    return _ADDRESS.sub("", repr(value))


def _code_digest(code) -> str:
    parts = [code.co_code.hex(), repr(code.co_names)]
    for const in code.co_consts:
        parts.append(_code_digest(const) if hasattr(const, "co_code") else _stable_repr(const))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class ProfileStore:
    """Peak memory per task of each operator, learned from runs; one small JSON file per operator."""

    def __init__(self, directory: str):
        self.directory = directory

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.json")

    def learned(self, key: str) -> dict | None:
        try:
            with open(self._path(key)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def save(self, key: str, profile: dict) -> None:
        os.makedirs(self.directory, exist_ok=True)
        path = self._path(key)
        with open(path + ".tmp", "w") as f:
            json.dump(profile, f, indent=2)
        os.replace(path + ".tmp", path)

"""A folder of SQL model files, dbt-style: each `name.sql` is a SELECT whose result is written to `<out>/name/`,
and `{{ ref('other') }}` reads the model `other`'s committed output.

Models run in dependency order, each written once through the commit protocol. A model whose text, upstream
models and input files are unchanged since its last commit is kept, not run again: after a crash (or a failed
model), running the folder again finishes what was left, without rewriting what was committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SqlError, close_matches

REF = re.compile(r"\{\{\s*ref\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\)\s*\}\}")
STATE_DIR = "_sluice_models"


@dataclass
class ModelResult:
    name: str
    path: str
    status: str  # "written" or "unchanged"
    rows: int | None


def discover(folder: str) -> dict[str, str]:
    files = sorted(Path(folder).glob("*.sql"))
    if not files:
        raise SqlError(f"{folder!r} holds no .sql model files. Put one SELECT per file, e.g. {folder}/daily.sql.")
    return {f.stem.lower(): f.read_text(encoding="utf-8") for f in files}


def dependency_order(models: dict[str, str]) -> list[str]:
    """Model names with every model after the ones it refs; a ref to no model or a cycle is a SqlError."""
    needs = {}
    for name, text in models.items():
        refs = {r.lower() for r in REF.findall(text)}
        for ref in sorted(refs - set(models)):
            hint = close_matches(ref, models)
            raise SqlError(f"Model {name!r} refs {ref!r}, which is no model in this folder."
                           + (f" Did you mean {', '.join(repr(h) for h in hint)}?" if hint else ""))
        needs[name] = refs
    order, done, visiting = [], set(), []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            raise SqlError(f"Models ref each other in a cycle: {' -> '.join(cycle)}. Break it.")
        visiting.append(name)
        for dep in sorted(needs[name]):
            visit(dep)
        visiting.pop()
        done.add(name)
        order.append(name)

    for name in sorted(models):
        visit(name)
    return order


def _files_signature(path: str) -> list:
    if os.path.isfile(path):
        stat = os.stat(path)
        return [[path, stat.st_size, stat.st_mtime_ns]]
    found = []
    for root, _, files in os.walk(path):
        for file in sorted(files):
            full = os.path.join(root, file)
            stat = os.stat(full)
            found.append([os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns])
    return sorted(found)


def run_models(folder: str, out: str, tables: dict[str, str] | None = None, on_result=None) -> list[ModelResult]:
    """Run every model of `folder` into `out/<model>/` (Parquet); `tables` names input paths the models read.
    `on_result(result)` hears of each model as it is done."""
    from .. import read_parquet
    from . import sql
    models = discover(folder)
    order = dependency_order(models)
    tables = dict(tables or {})
    state_dir = Path(out, STATE_DIR)
    state_dir.mkdir(parents=True, exist_ok=True)
    inputs = {name: _files_signature(path) for name, path in sorted(tables.items()) if os.path.exists(path)}
    fingerprints: dict[str, str] = {}
    results = []
    for name in order:
        text = models[name]
        deps = sorted({r.lower() for r in REF.findall(text)})
        fingerprint = hashlib.sha256(json.dumps([text, [fingerprints[d] for d in deps], inputs]).encode()).hexdigest()
        fingerprints[name] = fingerprint
        target = os.path.join(out, name)
        state_file = state_dir / f"{name}.json"
        if state_file.exists() and os.path.exists(os.path.join(target, "_SUCCESS")) and \
                json.loads(state_file.read_text()).get("fingerprint") == fingerprint:
            results.append(ModelResult(name, target, "unchanged", None))
            if on_result is not None:
                on_result(results[-1])
            continue
        rendered = REF.sub(lambda m: m.group(1).lower(), text)
        available = {**tables, **{d: read_parquet(os.path.join(out, d)) for d in deps}}
        try:
            dataset = sql(rendered, available)
        except SqlError as error:
            raise SqlError(f"In model {name!r} ({os.path.join(folder, name + '.sql')}): {error}",
                           error.line, error.column) from None
        written = dataset.write_parquet(target, mode="overwrite")
        state_file.write_text(json.dumps({"fingerprint": fingerprint, "rows": written.rows}))
        results.append(ModelResult(name, target, "written", written.rows))
        if on_result is not None:
            on_result(results[-1])
    return results

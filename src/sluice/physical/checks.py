"""Running data-quality checks: what one block tells a check, and the verdict over every block.

Why this module exists: a `Check` (plan/checks.py) becomes a `CheckStep` in its stage's chain.
On each block the step measures what its check needs (rows and failing rows, nulls, the newest
timestamp, hashes of the key) as a small `CheckPartial` that travels in the task's report; the
driver merges the partials of every task into a `CheckState` and, when the data has all gone
by, gives the verdict (`CheckState.result`) before anything is committed. A row check that
quarantines hands its failing rows back to the task, which sends them to the dead letters.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataQualityError
from ..expr.compile import to_polars
from ..expr.types import arrow_to_polars
from ..plan.checks import Check
from .operators import Operator


@dataclass
class CheckPartial:
    """What one block told a check."""

    name: str
    rows: int = 0
    failed: int = 0
    nulls: int = 0
    newest: object = None
    hashes: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class CheckStep(Operator):
    check: Check
    name = "Expect"

    def apply(self, table: pa.Table) -> pa.Table:
        kept, _, _ = self.evaluate(table)
        return kept

    def evaluate(self, table: pa.Table) -> tuple[pa.Table, np.ndarray, CheckPartial]:
        """The block to hand on (without the failing rows when they are quarantined), the indices of the
        failing rows, and the block's partial."""
        check = self.check
        partial = CheckPartial(check.name, rows=table.num_rows)
        failing = np.empty(0, dtype=np.int64)
        if table.num_rows == 0:
            return table, failing, partial
        if check.kind == "rows":
            frame = arrow_to_polars(table.select(sorted(check.used_columns())))
            ok = frame.select(to_polars(check.predicate).fill_null(False).alias("ok")).to_series()
            failing = np.flatnonzero(~ok.to_numpy())
            partial.failed = len(failing)
            if check.action == "quarantine" and len(failing):
                keep = np.ones(table.num_rows, dtype=bool)
                keep[failing] = False
                return table.filter(pa.array(keep)), failing, partial
        elif check.kind == "null_rate":
            partial.nulls = table.column(check.columns[0]).null_count
        elif check.kind == "fresh":
            column = table.column(check.columns[0])
            partial.newest = pc.max(column).as_py() if column.null_count < len(column) else None
        elif check.kind == "unique":
            frame = arrow_to_polars(table.select(list(check.columns)))
            partial.hashes = frame.select(pl.struct(list(check.columns)).hash(seed=7)).to_series().to_numpy()
        return table, failing, partial

    def describe(self) -> str:
        return self.check.describe()


@dataclass
class CheckState:
    """A check's partials merged across tasks, and its verdict."""

    check: Check
    rows: int = 0
    failed: int = 0
    nulls: int = 0
    newest: object = None
    hashes: list[np.ndarray] = field(default_factory=list)

    def add(self, partial: CheckPartial) -> None:
        self.rows += partial.rows
        self.failed += partial.failed
        self.nulls += partial.nulls
        if partial.newest is not None and (self.newest is None or partial.newest > self.newest):
            self.newest = partial.newest
        if partial.hashes is not None and len(partial.hashes):
            self.hashes.append(partial.hashes)

    def result(self, now: float | None = None) -> dict:
        """{"name", "check", "action", "status": passed | warned | failed, "detail", figures}."""
        check = self.check
        ok, detail = True, ""
        if check.kind == "rows":
            allowed = check.threshold or 0
            limit = allowed if allowed >= 1 or allowed == 0 else allowed * self.rows
            ok = self.failed <= limit if check.action == "fail" else self.failed == 0
            detail = f"{self.failed:,} of {self.rows:,} rows failed"
            if check.action == "quarantine" and self.failed:
                detail += " (quarantined to the dead letters)"
        elif check.kind == "row_count":
            ok = (check.low is None or self.rows >= check.low) and (check.high is None or self.rows <= check.high)
            detail = f"{self.rows:,} rows"
        elif check.kind == "null_rate":
            rate = self.nulls / self.rows if self.rows else 0.0
            ok = rate <= check.high
            detail = f"{self.nulls:,} nulls in {self.rows:,} rows ({rate:.2%})"
        elif check.kind == "unique":
            hashes = np.concatenate(self.hashes) if self.hashes else np.empty(0, dtype=np.uint64)
            repeated = len(hashes) - len(np.unique(hashes))
            ok = repeated == 0
            detail = f"{repeated:,} repeated key(s) in {self.rows:,} rows"
        elif check.kind == "fresh":
            age = _age_s(self.newest, now if now is not None else time.time())
            ok = age is not None and age <= check.max_age_s
            detail = "no values" if age is None else f"newest {self.newest} ({datetime.timedelta(seconds=int(age))} old)"
        status = "passed" if ok else ("failed" if check.action == "fail" else "warned")
        if check.action == "quarantine" and not ok:
            status = "warned"  # its rows went to the dead letters; the run goes on
        return {"name": check.name, "check": check.describe(), "action": check.action, "status": status,
                "detail": detail, "rows": self.rows, "failed": self.failed}


def _age_s(newest, now: float) -> float | None:
    if newest is None:
        return None
    if isinstance(newest, datetime.datetime):
        moment = newest if newest.tzinfo is not None else newest.replace(tzinfo=datetime.timezone.utc)
        return now - moment.timestamp()
    if isinstance(newest, datetime.date):
        return now - datetime.datetime.combine(newest, datetime.time(), datetime.timezone.utc).timestamp()
    return None


def verdict_error(results: list[dict], run_id: str) -> DataQualityError | None:
    failed = [r for r in results if r["status"] == "failed"]
    if not failed:
        return None
    lines = "\n".join(f"  - {r['check']}: {r['detail']}" for r in failed)
    return DataQualityError(f"Run {run_id}: {len(failed)} data-quality check(s) failed, so nothing was committed:\n"
                            f"{lines}\n  Fix the input, or relax the check (threshold=, or action='warn').")

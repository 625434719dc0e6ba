"""Data-quality checks: what a pipeline expects of its data, as a node of the plan.

Why this module exists: a five-hour job that writes a day of zero rows, or half null ids, or
duplicated keys, is worse than one that fails. `Dataset.expect*` puts a `Check` in the plan as
an `Expect` node, which passes rows through and counts: a row check (`expect(name, predicate)`)
per row, an aggregate check (row count bounds, a column's null rate, a key's uniqueness, the
freshness of a timestamp) over the whole data that reaches it. What happens when it fails is
its `action`:

- "quarantine" (row checks only): failing rows go to the dead-letter dataset with the check's
  name, and count against the run's error budget like any bad record;
- "warn": the rows stay; the result is recorded in the run's stats, summary and report;
- "fail": the run stops before it commits anything once the failures exceed `threshold` (a
  count, or a fraction of the rows the check saw; default 0).

Checks run where they stand in the plan: no rule moves a filter or a limit past one, since that
would change what it sees.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa

from ..errors import PlanError, column_not_found
from ..expr.tree import Expr, columns_of
from ..expr.typecheck import TEMPORAL, check_expression, kind_of_type
from .logical import LogicalNode, SingleInputNode

ACTIONS = ("quarantine", "warn", "fail")
KINDS = ("rows", "row_count", "null_rate", "unique", "fresh")


@dataclass(frozen=True)
class Check:
    name: str
    kind: str  # one of KINDS
    action: str = "fail"
    threshold: float | None = None  # rows checks: failures allowed (a count >= 1, or a fraction < 1)
    predicate: Expr | None = None  # rows: what every row must satisfy
    columns: tuple[str, ...] = ()  # null_rate, fresh: one column; unique: the key
    low: float | None = None  # row_count: at least; null_rate: unused
    high: float | None = None  # row_count: at most; null_rate: the largest share of nulls
    max_age_s: float | None = None  # fresh: the newest value is at most this old when the run ends

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise PlanError(f"expect {self.name!r}: action={self.action!r}; use one of {', '.join(ACTIONS)}.")
        if self.action == "quarantine" and self.kind != "rows":
            raise PlanError(f"expect {self.name!r}: only a row check (expect(name, predicate)) can quarantine rows; "
                            f"an aggregate check can warn or fail.")
        if self.threshold is not None and (self.threshold < 0 or (self.threshold >= 1 and
                                                                  self.threshold != int(self.threshold))):
            raise PlanError(f"expect {self.name!r}: threshold={self.threshold!r}; give a count of rows such as 10, "
                            f"or a fraction of the rows the check sees such as 0.01.")

    def used_columns(self) -> set[str]:
        return (columns_of(self.predicate) if self.predicate is not None else set()) | set(self.columns)

    def describe(self) -> str:
        what = {
            "rows": lambda: f"every row: {self.predicate!r}",
            "row_count": lambda: "rows " + " and ".join(
                part for part in (f">= {self.low:,.0f}" if self.low is not None else "",
                                  f"<= {self.high:,.0f}" if self.high is not None else "") if part),
            "null_rate": lambda: f"nulls in {self.columns[0]} <= {self.high:.2%}",
            "unique": lambda: f"({', '.join(self.columns)}) unique",
            "fresh": lambda: f"newest {self.columns[0]} at most {datetime.timedelta(seconds=self.max_age_s)} old",
        }[self.kind]()
        limit = f", threshold {self.threshold:g}" if self.threshold else ""
        return f"expect {self.name!r}: {what} ({self.action}{limit})"


@dataclass(frozen=True, eq=False)
class Expect(SingleInputNode):
    input: LogicalNode
    check: Check

    def __post_init__(self):
        schema = self.input.schema
        if schema is None:
            return
        check = self.check
        for name in check.columns:
            if name not in schema.names:
                raise column_not_found(name, schema, f"expect {check.name!r}")
        if check.predicate is not None:
            kind = check_expression(check.predicate, schema, f"in expect {check.name!r}")
            if kind not in ("boolean", "null", "other"):
                raise PlanError(f"expect {check.name!r} needs a boolean condition, but `{check.predicate!r}` is {kind}.")
        if check.kind == "fresh" and kind_of_type(schema.field(check.columns[0]).type) != TEMPORAL:
            raise PlanError(f"expect {check.name!r}: freshness needs a date or timestamp column; "
                            f"{check.columns[0]} is {schema.field(check.columns[0]).type}.")

    @cached_property
    def schema(self) -> pa.Schema | None:
        return self.input.schema

    def label(self) -> str:
        return f"Expect {self.check.describe()}"

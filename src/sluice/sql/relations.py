"""Relations in scope of one SELECT, and the joins between them.

Inside the planner every column of a FROM item is named `<alias>.<column>` (so columns of
different tables never collide), and a `Rel` is a Dataset plus the names that joins merged
away: an inner equi-join keeps only its left key column, so the right key's name becomes an
alias of it. `join_inner_group` orders a comma/inner join of several tables by their join
predicates: each step joins a table connected to those joined so far, on every equality between
them: the smallest one that a condition of its own filters, else the first in FROM order, so no pair of tables is crossed unless the query asks for a cross
product, and a query written fact table to dimensions (as TPC-H's are) keeps its order. Without
statistics of key uniqueness, FROM order is the author's plan: sizes alone would join two tables
on a non-key column (TPC-H Q5's c_nationkey = s_nationkey) before the key join that bounds it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ..api.dataset import Dataset
from ..expr.tree import Column, Expr, col, lit
from ..plan.estimates import estimated_bytes
from .front import normalized

_names = itertools.count()


def restart_names() -> None:
    """Number internal names from 0 again for a new query, so one text always plans to the same plan (a run's
    fingerprint, which resume checks, depends on it). Names only need to be unique within one query: its
    output keeps only the columns its SELECT names."""
    global _names
    _names = itertools.count()


def fresh(prefix: str) -> str:
    """A planner-internal column name that no user column has."""
    return f"__sql_{prefix}{next(_names)}"


@dataclass
class Rel:
    dataset: Dataset
    aliases: dict[str, str] = field(default_factory=dict)
    grouped: bool = False  # after GROUP BY: only keys and aggregates are in scope
    # each FROM table of this scope as it was before the joins (with its own filters): a correlated subquery
    # takes its keys from there, a superset of the joined rows' keys that is far cheaper to compute
    bases: dict[str, Rel] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return self.dataset.columns

    def column(self, name: str) -> str | None:
        """The column holding the values of internal name `name`, or None if it is not in scope."""
        actual = self.aliases.get(name, name)
        return actual if actual in self.dataset.schema.names else None

    def with_dataset(self, dataset: Dataset) -> Rel:
        return Rel(dataset, dict(self.aliases), self.grouped, self.bases)

    def filter(self, predicate: Expr) -> Rel:
        return self.with_dataset(self.dataset.filter(predicate))

    def key_column(self, expr: Expr) -> tuple[Rel, str]:
        """A column holding `expr`, computed as a new one unless `expr` already is a column."""
        if isinstance(expr, Column) and expr.name in self.dataset.schema.names:
            return self, expr.name
        name = fresh("key")
        return self.with_dataset(self.dataset.with_columns(expr.alias(name))), name


def table_rel(alias: str, dataset: Dataset, column_names: list[str] | None = None) -> Rel:
    """A FROM item: its columns renamed to `<alias>.<column>` (or to the alias list `t (a, b)` gives)."""
    names = column_names or [normalized(n) for n in dataset.columns]
    exprs = [col(actual).alias(f"{alias}.{name}") for actual, name in zip(dataset.columns, names)]
    return Rel(dataset.select(*exprs))


def join_rels(left: Rel, right: Rel, pairs: list[tuple[Expr, Expr]], how: str) -> Rel:
    """Join on `left_expr = right_expr` pairs (how: inner, left, semi, anti or cross). An inner join's right
    key names become aliases of the left keys; a left join keeps the right keys' own columns (null where no
    row matched), joining on copies of them."""
    if not pairs:
        if how in ("semi", "anti"):
            # EXISTS without correlation: every row, or none, depending on whether the right side has rows
            flag = fresh("rows")
            counted = right.dataset.agg(**{flag: _count_all()})
            joined = left.dataset.join(counted, how="cross")
            kept = col(flag) > 0 if how == "semi" else col(flag) == 0
            return left.with_dataset(joined.filter(kept).drop(flag))
        if how == "left":
            one_left, one_right = fresh("one"), fresh("one")
            left_ds = left.dataset.with_columns(lit(1).alias(one_left))
            right_ds = right.dataset.with_columns(lit(1).alias(one_right))
            joined = left_ds.join(right_ds, left_on=one_left, right_on=one_right, how="left").drop(one_left)
            return Rel(joined, {**left.aliases, **right.aliases}, left.grouped, left.bases)
        return Rel(left.dataset.join(right.dataset, how="cross"), {**left.aliases, **right.aliases}, left.grouped,
                   left.bases)
    for expr in (e for pair in pairs for e in pair):
        if not isinstance(expr, Expr):
            raise TypeError(expr)
    left_keys, right_keys = [], []
    for left_expr, right_expr in pairs:
        left, left_key = left.key_column(left_expr)
        right, right_key = right.key_column(right_expr)
        left_keys.append(left_key)
        right_keys.append(right_key)
    if how == "left":
        copies = [fresh("rkey") for _ in right_keys]
        right = right.with_dataset(right.dataset.with_columns(*[col(k).alias(c) for k, c in zip(right_keys, copies)]))
        right_keys = copies
    joined = left.dataset.join(right.dataset, left_on=left_keys, right_on=right_keys, how=how)
    if how in ("semi", "anti"):
        return left.with_dataset(joined)
    aliases = {**left.aliases, **right.aliases}
    if how == "inner":
        merged = dict(zip(right_keys, left_keys))
        aliases = {name: merged.get(target, target) for name, target in aliases.items()}
        for right_key, left_key in merged.items():
            aliases[right_key] = left_key
    return Rel(joined, aliases, left.grouped, left.bases)


def _count_all():
    from ..expr.tree import count
    return count()


@dataclass
class Edge:
    """An equality `left_expr = right_expr` between two FROM items."""

    tables: tuple[str, str]
    sides: tuple  # the two sqlglot expressions, translated against the relation each side is in at join time


def join_inner_group(rels: dict[str, Rel], edges: list[Edge], translate, apply_ready,
                     filtered: set[str] = frozenset()) -> Rel:
    """Inner-join every relation of `rels`, using `edges` as join keys (`translate(rel, node)` makes a side's
    expression); `apply_ready(rel, joined)` applies the conditions whose tables are all in `joined` and
    returns the filtered relation."""
    remaining = dict(rels)
    start = next(iter(remaining))
    current = remaining.pop(start)
    joined = {start}
    current = apply_ready(current, joined)
    while remaining:
        connected = [a for a in remaining if any(_links(e, joined, a) for e in edges)]
        selective = [a for a in connected if a in filtered]
        if selective:
            nxt = min(selective, key=lambda a: estimated_bytes(remaining[a].dataset.plan) or 0)
        else:
            nxt = connected[0] if connected else next(iter(remaining))
        pairs = []
        for edge in edges:
            if _links(edge, joined, nxt):
                here, there = edge.sides if edge.tables[1] == nxt else edge.sides[::-1]
                pairs.append((translate(current, here), translate(remaining[nxt], there)))
        current = join_rels(current, remaining.pop(nxt), pairs, "inner" if pairs else "cross")
        joined.add(nxt)
        edges = [e for e in edges if not (set(e.tables) <= joined)]
        current = apply_ready(current, joined)
    return current


def _links(edge: Edge, joined: set[str], table: str) -> bool:
    a, b = edge.tables
    return (a in joined and b == table) or (b in joined and a == table)

"""Dataset methods that number, sample and reshape rows: head, with_row_index, sample, explode, unpivot, pivot.

They are kept out of dataset.py (the relational core and the actions) so each file stays readable;
`Dataset` inherits them. Each builds one plan node (plan/reshape.py) that checks its arguments at once.
"""

# ruff: noqa: F821 - methods return `Dataset`, the class they are mixed into (dataset.py imports this module)
from __future__ import annotations

from collections.abc import Sequence

from ..errors import PlanError
from ..expr.tree import col, lit, when
from ..plan.logical import Limit
from ..plan.reshape import Explode, RowIndex, Sample, Unpivot


def _column_names(value: str | Sequence[str] | None, context: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        if not isinstance(name, str):
            raise PlanError(f"{context} takes column names, got {name!r}.")
    return names


class ReshapeMethods:
    """Mixed into `Dataset` (whose `_plan` and `_derive` these use; each returns a Dataset)."""

    def head(self, n: int = 5) -> Dataset:
        """The first n rows, as a Dataset (the same as limit(n); take(n) returns them as dicts)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise PlanError(f"head() needs a non-negative integer, got {n!r}.")
        return self._derive(Limit(self._plan, n))  # type: ignore[attr-defined]

    def with_row_index(self, name: str = "index", offset: int = 0) -> Dataset:
        """Prepend an int64 column `name` numbering rows offset, offset+1, ... in the order the dataset
        streams them. The numbers are the same on every run and runner: each block's first number is
        counted from the row counts of the blocks before it, never from which task finished first. The
        order is the input's (files, then rows within them), or a sort's: after a group_by or a join, whose
        row order is not defined, sort first for meaningful numbers."""
        return self._derive(RowIndex(self._plan, name, offset))  # type: ignore[attr-defined]

    def sample(self, fraction: float, seed: int = 0) -> Dataset:
        """Keep about `fraction` of the rows. A row is kept when a hash of (seed, its position in the
        stream) falls under the fraction, so a seed picks the same rows on every run and runner, however
        the rows are split into blocks (given the same input order; see with_row_index)."""
        return self._derive(Sample(self._plan, fraction, seed))  # type: ignore[attr-defined]

    def explode(self, columns: str | Sequence[str], *more: str, empty_as_null: bool = True,
                keep_nulls: bool = True) -> Dataset:
        """One row per element of the list column(s), the other columns repeated. Several columns explode
        together: each row's lists must have the same length.

        By default an empty list and a null list each give one row with a null, so no input row is lost
        (current Polars drops empty lists unless given empty_as_null=True; sluice keeps them by default).
        empty_as_null=False drops rows with an empty list, keep_nulls=False rows with a null one; with both
        False it is DuckDB's UNNEST and Spark's explode (Spark's explode_outer is the default here)."""
        names = _column_names(columns, "explode()") + tuple(more)
        return self._derive(Explode(self._plan, names, bool(empty_as_null), bool(keep_nulls)))

    def unpivot(self, on: str | Sequence[str] | None = None, index: str | Sequence[str] | None = None, *,
                variable_name: str = "variable", value_name: str = "value") -> Dataset:
        """Wide to long (Polars' unpivot, also called melt): each input row becomes one row per `on`
        column, holding the `index` columns, the column's name in `variable_name` and its value in
        `value_name`. on=None unpivots every column not in `index`. The `on` columns need a common type."""
        schema = self.schema  # type: ignore[attr-defined]
        index_names = _column_names(index, "unpivot(index=...)") or ()
        on_names = _column_names(on, "unpivot(on=...)")
        if on_names is None:
            on_names = tuple(n for n in schema.names if n not in index_names)
        return self._derive(Unpivot(self._plan, on_names, index_names, variable_name,  # type: ignore[attr-defined]
                                    value_name))

    def melt(self, on: str | Sequence[str] | None = None, index: str | Sequence[str] | None = None, *,
             variable_name: str = "variable", value_name: str = "value") -> Dataset:
        """The same as unpivot()."""
        return self.unpivot(on, index, variable_name=variable_name, value_name=value_name)

    def pivot(self, on: str, index: str | Sequence[str], values: str | Sequence[str], aggregate_function: str = "sum",
              on_values: Sequence | None = None) -> Dataset:
        """Long to wide: one row per distinct `index`, one column per value of `on`, holding
        `aggregate_function` (sum, mean, min, max or count) of `values` over the rows with that value
        (null where there are none, as in SQL; count gives 0). Columns are named by the value (`str(v)`,
        "null" for null); with several `values` columns, `{values}_{v}`.

        With `on_values` the columns are exactly those, in that order, and the pivot is one group_by with
        one conditional aggregate per column. Without it, sluice first finds the distinct values of `on`
        (sorted, null last): that is one extra pass over the input, which runs twice."""
        if aggregate_function not in PIVOT_AGGREGATES:
            raise PlanError(f"pivot(aggregate_function={aggregate_function!r}): use one of "
                            f"{', '.join(PIVOT_AGGREGATES)}.")
        if not isinstance(on, str):
            raise PlanError(f"pivot(on=...) takes one column name, got {on!r}.")
        index_names = _column_names(index, "pivot(index=...)") or ()
        value_names = _column_names(values, "pivot(values=...)") or ()
        if not index_names or not value_names:
            raise PlanError("pivot() needs index= (the row keys) and values= (the column(s) to aggregate).")
        self._require([on, *index_names, *value_names], "pivot()")  # type: ignore[attr-defined]
        if on_values is None:
            found = self.select(on).distinct().sort(on, nulls_last=True).to_arrow()  # type: ignore[attr-defined]
            on_values = found.column(0).to_pylist()
        on_values = list(on_values)
        if not on_values:
            raise PlanError(f"pivot(): {on!r} has no values to make columns of (the input is empty, or "
                            f"on_values=[] was given).")
        aggs = {}
        for value_name in value_names:
            for value in on_values:
                name = _pivot_name(value) if len(value_names) == 1 else f"{value_name}_{_pivot_name(value)}"
                if name in aggs or name in index_names:
                    raise PlanError(f"pivot() would make two columns named {name!r} (values of {on!r} print "
                                    f"alike, or one is an index column). Cast or rename first.")
                matches = col(on).is_null() if value is None else col(on) == lit(value)
                picked = when(matches).then(col(value_name)).otherwise(None)
                aggs[name] = getattr(picked, aggregate_function)()
        return self.group_by(*index_names).agg(**aggs)  # type: ignore[attr-defined]


PIVOT_AGGREGATES = ("sum", "mean", "min", "max", "count")


def _pivot_name(value) -> str:
    return "null" if value is None else str(value)

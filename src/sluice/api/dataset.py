"""`Dataset`: the immutable, lazy handle users build pipelines with.

Every transformation returns a new Dataset over a new logical plan node and checks it
against the schema at once, so mistakes surface when the line is written, not hours into a
run. Nothing reads data until an action (`to_arrow`, `count`, `iter_batches`, `write_*`...)
runs the plan: optimize, plan stages, execute on the chosen runner, record stats.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

import pyarrow as pa

from .. import config as config_module
from ..driver import session
from ..driver.run import explain_plan, run_blocks, write
from ..engine.context import RunContext
from ..errors import PlanError, SluiceError, column_not_found
from ..expr.tree import Aggregation, Alias, Column, Expr, col
from ..expr.typecheck import resolve_expression
from ..expr.types import narrowest_column
from ..io.memory import ArrowSource
from ..io.sinks import CsvSink, FileSink, JsonSink, ParquetSink, WriteResult
from ..kernels.udf import BATCH_FORMATS, check_udf_arguments, parse_concurrency, to_batch_format
from ..observe.stats import RunStats
from ..physical.planner import plan_physical
from ..physical.stages import PhysicalPlan
from ..plan.checks import Check, Expect
from ..plan.logical import (
    Aggregate, Distinct, Filter, Join, Limit, LogicalNode, MapBatches, Project, Repartition, Scan, Sort, SortSpec,
    UdfOptions, Union, Write,
)
from ..plan.optimizer import optimize
from ..plan.windows import extract_windows, has_window, over_every_row


class Dataset:
    """A lazy, immutable description of data and the steps that compute it."""

    def __init__(self, plan: LogicalNode):
        self._plan = plan
        self._last_stats: RunStats | None = None

    @property
    def plan(self) -> LogicalNode:
        return self._plan

    def __repr__(self) -> str:
        schema = self._plan.schema
        columns = ", ".join(f"{f.name}: {f.type}" for f in schema) if schema is not None else "schema known at run time"
        return f"Dataset({columns})"

    # ------------------------------------------------------------ schema

    @property
    def schema(self) -> pa.Schema:
        """The output schema; computed from the plan without running it wherever possible."""
        schema = self._plan.schema
        if schema is not None:
            return schema
        stream = self._execute(self._plan)
        try:
            first = next(stream, None)
        finally:
            stream.close()
        if first is None:
            raise PlanError("The output schema cannot be known: map_batches could not run on an empty batch "
                            "and the pipeline produced no rows. Pass schema= to map_batches.")
        return first.schema

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def _require(self, names: Sequence[str], context: str) -> None:
        schema = self.schema
        for name in names:
            if name not in schema.names:
                raise column_not_found(name, schema, context)

    # ------------------------------------------------------------ transformations

    def _derive(self, plan: LogicalNode) -> Dataset:
        return Dataset(plan)

    def filter(self, predicate: Expr) -> Dataset:
        """Keep the rows where `predicate` is true (null counts as false)."""
        if not isinstance(predicate, Expr):
            raise PlanError(f"filter() takes an expression such as col('x') > 0, got {predicate!r}.")
        predicate = over_every_row(resolve_expression(predicate, self._plan.schema))
        if has_window(predicate):
            plan, (predicate,) = extract_windows(self._plan, [predicate])
            kept = tuple(col(n) for n in self.schema.names)
            return self._derive(Project(Filter(plan, predicate), kept))
        return self._derive(Filter(self._plan, predicate))

    def select(self, *columns: str | Expr, **named: Expr) -> Dataset:
        """Keep or compute exactly these columns, in this order; keyword arguments name new ones."""
        if len(columns) == 1 and isinstance(columns[0], (list, tuple)):
            columns = tuple(columns[0])
        columns = tuple(columns) + tuple(_as_expr(e).alias(name) for name, e in named.items())
        if not columns:
            raise PlanError("select() needs at least one column name or expression.")
        exprs = tuple(col(c) if isinstance(c, str) else resolve_expression(c, self._plan.schema) for c in columns)
        if all(isinstance(e.expr if isinstance(e, Alias) else e, Aggregation) for e in exprs):
            return self.agg(*exprs)  # only aggregations: one row, as in Polars
        return self._project(exprs)

    def _project(self, exprs: tuple[Expr, ...]) -> Dataset:
        """A projection; window expressions among `exprs` (and aggregations, over every row) first become
        `Window` nodes below it."""
        exprs = tuple(over_every_row(e) for e in exprs)
        if not any(has_window(e) for e in exprs):
            return self._derive(Project(self._plan, exprs))
        plan, rewritten = extract_windows(self._plan, list(exprs))
        named = tuple(r if r.output_name() == e.output_name() else r.alias(e.output_name())
                      for r, e in zip(rewritten, exprs))
        return self._derive(Project(plan, named))

    def with_columns(self, *exprs: Expr, **named: Expr) -> Dataset:
        """Add columns, or replace same-named ones in place; keep every other column."""
        new = list(exprs) + [(_as_expr(e)).alias(name) for name, e in named.items()]
        for e in new:
            if not isinstance(e, Expr):
                raise PlanError(f"with_columns() takes expressions, got {e!r}. Use col(...) or lit(...).")
        new = [resolve_expression(e, self._plan.schema) for e in new]
        by_name = {e.output_name(): e for e in new}
        existing = self.schema.names
        kept = [by_name.pop(name) if name in by_name else col(name) for name in existing]
        return self._project(tuple(kept + list(by_name.values())))

    def rename(self, mapping: Mapping[str, str] | None = None, **renames: str) -> Dataset:
        """Rename columns: rename({"old": "new"}) or rename(old="new")."""
        mapping = {**(mapping or {}), **renames}
        self._require(list(mapping), "rename()")
        exprs = tuple(col(n).alias(mapping[n]) if n in mapping else col(n) for n in self.schema.names)
        return self._derive(Project(self._plan, exprs))

    def drop(self, *names: str) -> Dataset:
        """Remove these columns."""
        self._require(names, "drop()")
        kept = [n for n in self.schema.names if n not in names]
        if not kept:
            raise PlanError("drop() would remove every column. Keep at least one.")
        return self._derive(Project(self._plan, tuple(col(n) for n in kept)))

    def map_batches(self, fn: Callable, *, batch_format: str = "arrow", batch_size: int | None = None,
                    fn_kwargs: Mapping[str, Any] | None = None, schema: pa.Schema | None = None,
                    compute: str = "processes", concurrency: int | tuple[int, int] | None = None,
                    num_cpus: float = 1.0, num_gpus: float = 0.0, memory: int | str | None = None,
                    max_tasks_in_flight: int = 2, fn_constructor_args: Sequence[Any] = (),
                    fn_constructor_kwargs: Mapping[str, Any] | None = None) -> Dataset:
        """Apply `fn` to each batch. It receives the batch in `batch_format` and returns a batch.

        `fn` is a function, or a class whose instances are callable: each worker then builds
        one instance (`__init__` once, with fn_constructor_args/kwargs) and calls it per batch,
        which is how to keep a model loaded; a `close()` method is called at shutdown.

        compute="processes" (the default) runs it in worker processes, past the GIL, with
        blocks passed through shared memory; compute="threads" runs a function on the
        engine's threads, for code that releases the GIL (pyarrow.compute, numpy, torch).
        concurrency is the number of workers, or (min, max) to scale with the queue; by
        default one per CPU (num_cpus each). num_gpus (fractions allowed) gives each worker
        its own CUDA_VISIBLE_DEVICES where GPUs exist. memory= declares what one task needs
        (e.g. "3GiB"); without it sluice uses what earlier runs measured, and sizes the
        number of workers to fit the memory budget.

        The output schema is learned by calling a function once on an empty batch (a class's
        when its workers run); pass `schema=` to skip that. With `batch_size`, every batch but
        the last has exactly that many rows.
        """
        from ..config import parse_bytes
        check_udf_arguments(fn, batch_format, batch_size, fn_constructor_args, fn_constructor_kwargs)
        if compute not in ("processes", "threads"):
            raise PlanError(f"compute={compute!r}: use 'processes' (worker processes, the default) or 'threads' "
                            f"(the engine's threads, for functions that release the GIL).")
        if isinstance(fn, type) and compute == "threads":
            raise PlanError(f"{fn.__name__} is a class: it runs as a pool of worker processes, each holding one "
                            f"instance. Drop compute='threads', or pass a function.")
        if num_cpus <= 0 or num_gpus < 0 or max_tasks_in_flight < 1:
            raise PlanError("map_batches(): num_cpus must be > 0, num_gpus >= 0 and max_tasks_in_flight >= 1.")
        if concurrency is not None:
            parse_concurrency(concurrency, 1)
        options = UdfOptions(compute, concurrency, float(num_cpus), float(num_gpus),
                             parse_bytes(memory) if memory is not None else None, max_tasks_in_flight,
                             tuple(fn_constructor_args), tuple(sorted((fn_constructor_kwargs or {}).items())))
        node = MapBatches(self._plan, fn, batch_format, batch_size, tuple(sorted((fn_kwargs or {}).items())), schema,
                          options)
        return self._derive(node)

    def limit(self, n: int) -> Dataset:
        """The first n rows."""
        if not isinstance(n, int) or n < 0:
            raise PlanError(f"limit() needs a non-negative integer, got {n!r}.")
        return self._derive(Limit(self._plan, n))

    def union(self, *others: Dataset) -> Dataset:
        """All rows of this dataset then of each other one; columns are matched by name."""
        schema = self.schema
        inputs = [self._plan]
        for other in others:
            if not isinstance(other, Dataset):
                raise PlanError(f"union() takes Datasets, got {type(other).__name__}.")
            other_schema = other.schema
            if set(other_schema.names) != set(schema.names):
                raise PlanError(
                    f"union() needs the same columns on every input. This dataset has {schema.names}, "
                    f"the other has {other_schema.names}. Use select() or rename() to align them."
                )
            for field in schema:
                other_type = other_schema.field(field.name).type
                if other_type != field.type:
                    raise PlanError(
                        f"union(): column {field.name!r} is {field.type} here but {other_type} in the other "
                        f"input. Cast one side, e.g. col({field.name!r}).cast('{field.type}')."
                    )
            plan = other._plan
            if other_schema.names != schema.names:
                plan = Project(plan, tuple(col(n) for n in schema.names))
            inputs.append(plan)
        return self._derive(Union(tuple(inputs)))

    # ------------------------------------------------------------ wide operations

    def join(self, other: Dataset, on: str | Sequence[str] | None = None, *, left_on: str | Sequence[str] | None = None,
             right_on: str | Sequence[str] | None = None, how: str = "inner", suffix: str = "_right",
             strategy: str = "auto") -> Dataset:
        """Join with `other` on equal keys (nulls never match).

        how: inner, left, right, full, semi, anti or cross. strategy: auto picks broadcast
        when the smaller side is estimated under the broadcast threshold and otherwise
        shuffles; at run time a build side that measures small is broadcast anyway.
        """
        if not isinstance(other, Dataset):
            raise PlanError(f"join() takes a Dataset, got {type(other).__name__}.")
        if on is not None and (left_on is not None or right_on is not None):
            raise PlanError("Pass either on= or left_on= and right_on=, not both.")
        left_keys = _names(on if on is not None else left_on)
        right_keys = _names(on if on is not None else right_on)
        left, right = self._plan, other._plan
        left_schema, right_schema = left.schema, other._plan.schema
        if left_schema is not None and right_schema is not None and how != "cross":
            left, right = _align_key_types(left, right, left_keys, right_keys)
        return self._derive(Join(left, right, left_keys, right_keys, how, suffix, strategy))

    def group_by(self, *keys: str | Expr) -> GroupedDataset:
        """Group rows by these columns (or expressions); follow with .agg(...)."""
        if len(keys) == 1 and isinstance(keys[0], (list, tuple)):
            keys = tuple(keys[0])
        if not keys:
            raise PlanError("group_by() needs at least one key. For one row over everything, call agg() directly.")
        hidden = {f"__sluice_key_{i}": k for i, k in enumerate(keys) if isinstance(k, Expr) and not isinstance(k, Column)}
        dataset = self.with_columns(**hidden) if hidden else self
        names = tuple(k if isinstance(k, str) else k.name if isinstance(k, Column) else f"__sluice_key_{i}"
                      for i, k in enumerate(keys))
        shown = {f"__sluice_key_{i}": k.output_name() for i, k in enumerate(keys) if f"__sluice_key_{i}" in hidden}
        return GroupedDataset(dataset, names, shown)

    def agg(self, *aggs: Expr, **named: Expr) -> Dataset:
        """Aggregate the whole dataset into one row."""
        return GroupedDataset(self, ()).agg(*aggs, **named)

    def distinct(self, subset: str | Sequence[str] | None = None, keep: str = "any") -> Dataset:
        """Drop duplicate rows (judged on `subset` columns if given); keep any, the first or the last."""
        return self._derive(Distinct(self._plan, _names(subset) if subset is not None else None, keep))

    def sort(self, by: str | Sequence[str], descending: bool | Sequence[bool] = False,
             nulls_last: bool | Sequence[bool] = False) -> Dataset:
        """Sort by columns; range-partitioned from a sample so it runs in parallel and spills."""
        names = _names(by)
        return self._derive(Sort(self._plan, SortSpec(names, _flags(descending, names, "descending"),
                                                      _flags(nulls_last, names, "nulls_last"))))

    # ------------------------------------------------------------ data-quality checks (plan/checks.py)

    def expect(self, name: str, predicate: Expr, *, action: str = "fail", threshold: float | None = None) -> Dataset:
        """Every row must satisfy `predicate` (null counts as failing). action="quarantine" sends failing
        rows to the dead letters, "warn" records them, "fail" stops the run before its commit when more
        than `threshold` rows fail (a count, or a fraction of the rows checked; default 0)."""
        if not isinstance(predicate, Expr):
            raise PlanError(f"expect({name!r}) takes an expression such as col('x') > 0, got {predicate!r}.")
        predicate = resolve_expression(predicate, self._plan.schema)
        return self._derive(Expect(self._plan, Check(name, "rows", action, threshold, predicate=predicate)))

    def expect_rows(self, *, min: int | None = None, max: int | None = None, name: str = "row count",  # noqa: A002
                    action: str = "fail") -> Dataset:
        """The data reaching this point has between `min` and `max` rows."""
        if min is None and max is None:
            raise PlanError("expect_rows() needs min=, max= or both.")
        return self._derive(Expect(self._plan, Check(name, "row_count", action, low=min, high=max)))

    def expect_null_rate(self, column: str, max: float, *, name: str | None = None,  # noqa: A002
                         action: str = "fail") -> Dataset:
        """At most this share of `column` is null (0.01: one row in a hundred)."""
        if not 0 <= max <= 1:
            raise PlanError(f"expect_null_rate({column!r}): max={max!r}; give a share between 0 and 1.")
        return self._derive(Expect(self._plan, Check(name or f"{column} null rate", "null_rate", action,
                                                     columns=(column,), high=float(max))))

    def expect_unique(self, *keys: str, name: str | None = None, action: str = "fail") -> Dataset:
        """No two rows share the values of `keys` (checked by a 64-bit hash of the key per row)."""
        if not keys:
            raise PlanError("expect_unique() needs the key column(s).")
        return self._derive(Expect(self._plan, Check(name or f"({', '.join(keys)}) unique", "unique", action,
                                                     columns=tuple(keys))))

    def expect_fresh(self, column: str, max_age, *, name: str | None = None, action: str = "fail") -> Dataset:
        """The newest value of the date or timestamp `column` is at most `max_age` old when the run ends
        (a datetime.timedelta, or seconds)."""
        seconds = max_age.total_seconds() if hasattr(max_age, "total_seconds") else float(max_age)
        return self._derive(Expect(self._plan, Check(name or f"{column} fresh", "fresh", action, columns=(column,),
                                                     max_age_s=seconds)))

    def repartition(self, n: int, by: str | Sequence[str] | None = None) -> Dataset:
        """Redistribute rows into n blocks: by a hash of `by`, or round-robin."""
        return self._derive(Repartition(self._plan, n, _names(by) if by is not None else None))

    # ------------------------------------------------------------ running

    def _execute(self, plan: LogicalNode, context: RunContext | None = None,
                 commit: Callable[[], None] | None = None) -> Iterator[pa.Table]:
        """Run `plan`, yielding its blocks; `commit` runs once every block is out, as part of the run."""
        context = context or RunContext(config_module.current())
        if session.explain_only:
            session.explained.append(self)
            print(f"\n### plan {len(session.explained)}\n{explain_plan(plan)}")
            return
        self._last_stats = context.stats
        yield from run_blocks(plan, context, commit)

    def bad_records(self) -> Dataset:
        """The dead-letter dataset of this dataset's last run: one row per quarantined record."""
        stats = self.stats()
        if not stats.bad_records:
            from ..reliability.quarantine import DEAD_LETTER_SCHEMA
            return Dataset(Scan(ArrowSource(DEAD_LETTER_SCHEMA.empty_table(), "bad records")))
        from .. import read_parquet
        return read_parquet(stats.bad_records_path)

    def iter_batches(self, *, batch_size: int | None = None, batch_format: str = "arrow") -> Iterator[Any]:
        """Stream the result batch by batch; at most the memory budget is held in flight."""
        if batch_format not in BATCH_FORMATS:
            raise PlanError(f"batch_format={batch_format!r} is not supported. Use one of {', '.join(BATCH_FORMATS)}.")
        from ..physical.operators import Rebatch
        rebatch = Rebatch(batch_size) if batch_size is not None else None  # a bad batch_size fails before the run
        blocks = self._execute(self._plan)
        if rebatch is not None:
            blocks = rebatch.apply(blocks)
        try:
            for block in blocks:
                for batch in block.to_batches():
                    if batch.num_rows:
                        yield batch if batch_format == "arrow" else to_batch_format(
                            pa.Table.from_batches([batch]), batch_format)
        finally:
            blocks.close()

    def to_arrow(self) -> pa.Table:
        blocks = list(self._execute(self._plan))
        if not blocks:
            return self.schema.empty_table()
        try:
            return pa.concat_tables(blocks)
        except pa.ArrowInvalid:
            return pa.concat_tables(blocks, promote_options="permissive")

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_polars(self):
        from ..expr.types import arrow_to_polars
        return arrow_to_polars(self.to_arrow())

    def take(self, n: int = 20) -> list[dict]:
        """The first n rows as a list of dicts."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise PlanError(f"take() needs a non-negative number of rows, got {n!r}.")
        return self.limit(n).to_arrow().to_pylist()

    def count(self) -> int:
        plan = self._plan
        schema = plan.schema
        if schema is not None and len(schema):
            plan = Project(plan, (col(narrowest_column(schema)),))
        return sum(block.num_rows for block in self._execute(plan))

    def show(self, n: int = 20) -> None:
        """Print the first n rows as a table."""
        from ..expr.types import arrow_to_polars
        print(arrow_to_polars(self.limit(n).to_arrow()))

    # ------------------------------------------------------------ writing

    def _write(self, sink: FileSink) -> WriteResult:
        """Run the pipeline into `sink` and commit."""
        if session.explain_only:
            sink.validate(self._plan.schema)
            list(self._execute(Write(self._plan, sink)))
            return WriteResult(sink.shown_path, (), 0, 0)
        context = RunContext(config_module.current())
        self._last_stats = context.stats
        return write(self._plan, sink, context)

    def write_parquet(self, path: str, *, partition_by: Sequence[str] | None = None, mode: str = "error",
                      filesystem=None, compression: str = "zstd") -> WriteResult:
        """Write Parquet files under the directory `path`, committed only if the whole job succeeds."""
        return self._write(ParquetSink(path, partition_by, mode, filesystem, compression=compression))

    def write_csv(self, path: str, *, partition_by: Sequence[str] | None = None, mode: str = "error",
                  filesystem=None) -> WriteResult:
        return self._write(CsvSink(path, partition_by, mode, filesystem))

    def write_json(self, path: str, *, partition_by: Sequence[str] | None = None, mode: str = "error",
                   filesystem=None) -> WriteResult:
        """Write newline-delimited JSON files."""
        return self._write(JsonSink(path, partition_by, mode, filesystem))

    # ------------------------------------------------------------ insight

    def physical_plan(self) -> PhysicalPlan:
        return plan_physical(optimize(self._plan))

    def explain(self, *, show: bool = True, analyze: bool = False) -> str | None:
        """Print the logical, optimized and physical plans (or return them with show=False).

        With analyze=True the pipeline runs first (its output is discarded), and the physical
        plan is annotated with what each stage did: rows, bytes and time per operator, the
        spread of exchange partitions and reduce tasks, skewed keys and adaptive decisions.
        """
        if analyze:
            for _ in self._execute(self._plan):
                pass
            from ..observe.analyze import analyzed_plan
            text = analyzed_plan(self._last_stats)
        else:
            text = explain_plan(self._plan)
        if show:
            print(text)
            return None
        return text

    def stats(self) -> RunStats:
        """Statistics of the last action run on this dataset."""
        if self._last_stats is None:
            raise SluiceError("stats() describes a run, and this dataset has not run yet. "
                              "Call an action first, e.g. .to_arrow(), .count() or .write_parquet(...).")
        return self._last_stats


class GroupedDataset:
    """The result of group_by(): call agg() to get a Dataset."""

    def __init__(self, dataset: Dataset, keys: tuple[str, ...], renames: dict[str, str] | None = None):
        self._dataset = dataset
        self._keys = keys
        self._renames = renames or {}  # hidden key column -> the name the user sees

    def agg(self, *aggs: Expr, **named: Expr) -> Dataset:
        exprs = tuple(aggs) + tuple(_as_expr(e).alias(name) for name, e in named.items())
        schema = self._dataset.plan.schema
        exprs = tuple(resolve_expression(e, schema) for e in exprs)
        result = self._dataset._derive(Aggregate(self._dataset.plan, self._keys, exprs))
        return result.rename(self._renames) if self._renames else result


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    names = tuple(value)
    for name in names:
        if not isinstance(name, str):
            raise PlanError(f"Expected column names, got {name!r}.")
    return names


def _flags(value: bool | Sequence[bool], names: tuple[str, ...], label: str) -> tuple[bool, ...]:
    if isinstance(value, bool):
        return (value,) * len(names)
    flags = tuple(bool(v) for v in value)
    if len(flags) != len(names):
        raise PlanError(f"{label} has {len(flags)} values for {len(names)} sort columns. Give one per column.")
    return flags


def _align_key_types(left: LogicalNode, right: LogicalNode, left_keys, right_keys):
    """Cast join keys of one kind but different types (int32 and float64, string and large_string) to
    their common type, so equal values hash alike. Keys of different kinds (a number and a string) are
    left for Join.__post_init__ to refuse: Polars' common type of those is a string, and a silent cast
    would join nothing."""
    import polars as pl

    from ..expr.typecheck import kind_of_type
    from ..expr.types import arrow_to_polars, polars_to_arrow
    left_schema, right_schema = left.schema, right.schema
    left_casts, right_casts = [], []
    for lk, rk in zip(left_keys, right_keys):
        if lk not in left_schema.names or rk not in right_schema.names:
            continue
        lt, rt = left_schema.field(lk).type, right_schema.field(rk).type
        if lt == rt or kind_of_type(lt) != kind_of_type(rt):
            continue
        frames = [arrow_to_polars(pa.table({"k": pa.array([], t)})) for t in (lt, rt)]
        try:
            common = polars_to_arrow(pl.concat(frames, how="vertical_relaxed")).schema.field("k").type
        except (pl.exceptions.PolarsError, pa.ArrowException):
            if not (pa.types.is_integer(lt) and pa.types.is_integer(rt)):
                continue  # Join.__post_init__ reports incompatible key types
            common = pa.decimal128(20, 0)  # uint64 with a signed type: only a 128-bit type holds both exactly
        if lt != common:
            left_casts.append(col(lk).cast(common))
        if rt != common:
            right_casts.append(col(rk).cast(common))
    if left_casts:
        left = Dataset(left).with_columns(*left_casts).plan
    if right_casts:
        right = Dataset(right).with_columns(*right_casts).plan
    return left, right


def _as_expr(value) -> Expr:
    from ..expr.tree import to_expr
    return to_expr(value)


"""The Ray runner: stages run as Ray tasks over object refs; the driver only schedules.

Why this module exists: it is the driver half of running a physical plan on Ray, for narrow
stages (exchange.py does wide ones). A stage's items (read tasks, or slices of upstream
blocks) each become one Ray task running the stage's operator chain (tasks.py); a stage with
class UDFs runs its chain in the UDF's actor pool instead (actors.py), split at each class.
Blocks stay in the object store as ObjectRefs and flow from task to task; the driver fetches
only the root stage's blocks, in order. What the driver does learn comes from each task's
small report: rows and bytes, operator statistics, events, quarantined rows.

Backpressure and order: each stage keeps a bounded window of tasks in flight (`2 x num_threads`,
or the cluster's CPUs + 1 if that is more) and hands results on in submission order, so
output order is deterministic, as on the local runner, and a slow consumer holds back every
producer. Stream operators (a global limit, re-batching) are planned on the driver from the
row counts in reports, as slices of upstream blocks that the next task concatenates; no
block travels through the driver. Ray retries a task whose worker died.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

from ...errors import RemoteUserCodeError, RunnerError
from ...io.source import MIN_TASK_BYTES, TARGET_TASK_BYTES
from ...observe.events import Sampler, run_sample
from ...observe.stats import HELD_BY_CONSUMER
from ...plan.operators import (
    GlobalLimit,
    MapBatchesStep,
    Rebatch,
    WriteStep,
)
from ...plan.physical import PhysicalPlan, Stage
from ...reliability.run_store import RunStore
from ..base import RunContext, Runner, StageReporting
from .cluster import cluster_cpus, connect, storage_environment
from .tasks import BadInputSink, ChainSpec, MapSpec, Report

_END = object()


class RayRunner(Runner):
    name = "ray"

    def execute(self, plan: PhysicalPlan, context: RunContext) -> Iterator[pa.Table]:
        run = RayRun(connect(context.config), context)
        budget = SimpleNamespace(reserved=0, limit=context.config.memory_budget)
        # a Ray cluster this driver started (ray.init) runs as its children: count them, as before
        sampler = Sampler(context.events, lambda: run_sample(context.stats, budget, with_workers=True)).start()
        failed = True
        try:
            for out in StageRun(run, plan.root).outputs():
                yield run.fetch(out.refs[0])
            if context._dead_letters is not None:
                context.dead_letters.finish()  # the exact error budget, before anything is committed
            failed = False
        except GeneratorExit:
            failed = False  # the consumer stopped early (a break, take()): not a failure
            raise
        finally:
            sampler.stop()
            run.close(failed)
            if context._dead_letters is not None:
                context.dead_letters.flush()


@dataclass
class Out:
    """One finished task's data outputs (a block, or one piece per exchange partition) and its report."""

    refs: list
    report: Report
    key: str | None = None  # a map task that feeds a durable exchange: what it read, for the task log

    @property
    def rows(self) -> int:
        return sum(self.report.rows)

    @property
    def bytes(self) -> int:
        return sum(self.report.bytes)


@dataclass
class Pending:
    outputs: list  # the last segment's data refs
    reports: list  # one report ref per segment, in order
    actors: list  # (pool, actor) per actor segment, to release when done
    block: str  # the task's block id, for events
    covers: dict


class RayRun:
    """One run on Ray: its settings, the window size, actor pools, and how reports fold into stats."""

    def __init__(self, ray, context: RunContext):
        self.ray = ray
        self.context = context
        self.config = context.config
        self.stats = context.stats
        self.parallelism = cluster_cpus()
        # as on the local runner (2 x num_threads), and every CPU of a larger cluster busy with one to spare
        self.window = max(self.config.max_tasks_in_flight, self.parallelism + 1)
        self.pools: dict[int, Any] = {}  # id(MapBatchesStep) -> ActorPool
        self.environ = tuple(sorted(storage_environment().items()))
        self._gpu_notes: set[int] = set()

    def task_bytes(self, ceiling: int, floor: int) -> int:
        """A task size that lets every CPU hold one within the memory budget (as on the local runner)."""
        from ..local.budget import WORK_FACTOR
        return min(ceiling, max(floor, self.config.memory_budget // (WORK_FACTOR * 2 * self.parallelism)))

    @property
    def reduce_bytes(self) -> int:
        return self.task_bytes(self.config.target_partition_bytes, 1 << 20)

    @property
    def has_gpus(self) -> bool:
        return bool(self.ray.cluster_resources().get("GPU"))

    def pool(self, step: MapBatchesStep):
        key = id(step)
        if key not in self.pools:
            from .actors import ActorPool
            held = sum(pool.most_cpus for pool in self.pools.values())
            try:
                self.pools[key] = ActorPool(self.ray, step, self.context, self.parallelism, held)
            except Exception as exc:  # noqa: BLE001 - an actor's __init__ raising arrives wrapped by Ray
                error = self.translate(exc)
                raise error from error.__cause__
        return self.pools[key]

    def task_options(self, operators) -> tuple[dict, bool]:
        """Ray resources for a task running these operators (function UDFs' num_gpus and memory), and
        whether its UDFs must see no GPU because the cluster has none."""
        steps = [op for op in operators if isinstance(op, MapBatchesStep)]
        options: dict = {}
        gpus = max((op.node.options.num_gpus for op in steps), default=0.0)
        memory = max((op.node.options.memory or 0 for op in steps), default=0)
        hide = False
        if gpus and self.has_gpus:
            options["num_gpus"] = gpus
        elif gpus:
            hide = True
            for op in steps:
                if op.node.options.num_gpus and id(op) not in self._gpu_notes:
                    self._gpu_notes.add(id(op))
                    self.stats.note(f"map_batches {op.node.fn_name}: num_gpus={op.node.options.num_gpus:g} but the "
                                    f"Ray cluster has no GPU; it runs on the CPU")
        if memory:
            options["memory"] = memory
        return options, hide

    def fetch(self, ref) -> pa.Table:
        try:
            return self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - translated into the error the user's code raised
            error = self.translate(exc)
            raise error from error.__cause__

    def translate(self, exc: BaseException) -> BaseException:
        """The exception to raise for a failed task: the one raised in it, or a RunnerError saying what Ray said."""
        exceptions = self.ray.exceptions
        if isinstance(exc, exceptions.RayTaskError) and isinstance(getattr(exc, "cause", None), BaseException):
            cause = exc.cause
            if isinstance(cause, exceptions.RayError):
                return self.translate(cause)
            from ..local.worker_reports import unpickle_exception
            info = getattr(cause, "info", None)
            if isinstance(cause, RemoteUserCodeError) and isinstance(info, dict) and info.get("pickled"):
                cause.__cause__ = unpickle_exception(info["pickled"])
            elif getattr(cause, "remote_cause", None):
                cause.__cause__ = unpickle_exception(cause.remote_cause)
            return cause
        if isinstance(exc, exceptions.RayError):
            return RunnerError(f"Ray failed to run a task of this job: {type(exc).__name__}: {exc}")
        return exc

    def apply(self, stage: Stage, report: Report, block: str, covers: dict) -> None:
        """Fold a task's report into the run: statistics, events, retries, quarantined rows."""
        stats, context = self.stats, self.context
        for record in report.ops:
            stats.record(*record)
        if report.input_bytes:
            stats.add_input(report.input_bytes)
        for error in report.retries:
            stats.add_retry(error)
        if report.hot_keys:
            with stats._lock:
                stats.skewed_keys.extend(report.hot_keys)
        task = {"stage": report.stage, "block": block, "attempt": 1, "pid": report.pid, "host": report.host,
                "node": report.node}
        context.events.emit("task_start", ts=report.started, **task, **covers)
        context.events.emit("task_end", ts=report.ended, **task, status="ok", rows=sum(report.rows),
                            bytes=sum(report.bytes), wall_s=report.ended - report.started)
        for bad in report.unreadable:
            context.dead_letters.record_unreadable(report.stage, *bad)
        for batch in report.bad:
            from ...reliability.quarantine import BadRow
            operator, label = stage.operators[batch.op_index], stage.operator_labels[batch.op_index]
            seen = stats.operators[(report.stage, label)].rows_in
            context.dead_letters.record(report.stage, operator, label, f"stage{report.stage}-op{batch.op_index}",
                                        batch.rows, [BadRow(i, e) for i, e in enumerate(batch.errors)],
                                        batch.positions, seen)
            stats.emit("bad_records", stage=report.stage, operator=label, block=block, count=len(batch.errors))

    def failed(self, stage_id: int, pending: Pending, error: BaseException, waited_since: float) -> None:
        """Log a failed task (its start and end, where it ran) and count the retries it made."""
        report = getattr(error, "task_report", None)
        if report is not None:
            del error.task_report  # type: ignore[attr-defined] - the user gets their exception as it was
        task = {"stage": stage_id, "block": pending.block, "attempt": 1}
        end = {"wall_s": time.time() - waited_since}
        if report is not None:
            task.update(pid=report.pid, host=report.host, node=report.node)
            self.context.events.emit("task_start", ts=report.started, **task, **pending.covers)
            end = {"ts": report.ended, "wall_s": report.ended - report.started}
            for retried in report.retries:
                self.stats.add_retry(retried)
        self.context.events.emit("task_end", **task, **end, status="failed", error=f"{type(error).__name__}: {error}")

    def close(self, failed: bool) -> None:
        pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            pool.close(graceful=not failed)


class Chain:
    """A stage's operator chain as submitted: one task, or segments split at class UDFs.

    Without class UDFs the chain is one Ray task. With them, the first class's actor runs
    everything up to the next class (the read or reduce included, so no task has to hand it
    the block), and each later class starts a segment run by its own pool.
    """

    def __init__(self, run: RayRun, spec: ChainSpec):
        self.run = run
        ops = spec.operators
        cuts = [i for i, op in enumerate(ops) if isinstance(op, MapBatchesStep) and op.node.is_class]
        bounds = [0] + cuts[1:] + [len(ops)]
        self.segments = []
        for number, (start, end) in enumerate(itertools.pairwise(bounds)):
            last = number == len(bounds) - 2
            part = replace(spec, operators=ops[start:end], labels=spec.labels[start:end],
                           first_index=spec.first_index + start, finish=spec.finish if last else None)
            if number > 0:
                part = replace(part, reducer=None, read_schema=None, input_schemas=())
            pool = run.pool(ops[cuts[number]]) if cuts else None
            options, hide = run.task_options(part.operators) if pool is None else ({}, pool.hides_gpus)
            part = replace(part, hide_gpus=hide)
            self.segments.append((pool, run.ray.put(part), part.outputs + 1, options))

    def submit(self, kind: str, payload: Any, args: list, block: str, covers: dict) -> Pending:
        from .tasks import remote
        reports, actors, outputs = [], [], None
        for number, (pool, spec_ref, returns, options) in enumerate(self.segments):
            if number > 0:
                kind, payload, args = "blocks", [None], [outputs[0]]
            if pool is None:
                refs = remote("stage_task").options(num_returns=returns, **options).remote(spec_ref, kind, payload,
                                                                                          *args)
            else:
                actor = pool.pick()
                actors.append((pool, actor))
                refs = actor.run.options(num_returns=returns).remote(spec_ref, kind, payload, *args)
            outputs, report = refs[:-1], refs[-1]
            reports.append(report)
        return Pending(outputs, reports, actors, block, covers)


class StageRun(StageReporting):
    """One stage's stream of finished task outputs, in order; `finish` hands them to an exchange."""

    def __init__(self, run: RayRun, stage: Stage, finish: MapSpec | None = None, checkpoint=None):
        self.run = run
        self.stage = stage
        self.context = run.context
        self.finish = finish
        self._numbers = itertools.count()
        self.checkpoint = checkpoint  # the durable exchange (persist.py) this stage's map tasks feed
        # read tasks have keys (what they read), so each one's map output is logged, and skipped on resume
        self.maps_to_checkpoint = checkpoint is not None and stage.scan is not None
        self.writes = bool(stage.operators) and isinstance(stage.operators[-1], WriteStep) and \
            self.context.store is not None

    def spec(self, **fields) -> ChainSpec:
        fields.setdefault("operators", self.stage.operators)
        fields.setdefault("labels", self.stage.operator_labels if fields["operators"] == self.stage.operators
                          else tuple(op.name for op in fields["operators"]))
        fields.setdefault("finish", self.finish)
        fields.setdefault("environ", self.run.environ)
        return ChainSpec(self.stage.id, self.context.run_id, self.run.config, **fields)

    def outputs(self) -> Iterator[Out]:
        return self._reported(self._counted(self._outputs()))

    @staticmethod
    def _rows_of(output: Out) -> int:
        return output.rows

    def upstream(self, stage: Stage, finish: MapSpec | None = None, checkpoint=None) -> Iterator[Out]:
        return StageRun(self.run, stage, finish, checkpoint).outputs()

    def _outputs(self) -> Iterator[Out]:
        stage = self.stage
        if stage.shuffle:
            from .exchange import ShuffleRun
            self._start(None)
            yield from ShuffleRun(self).outputs()
            return
        if stage.scan is not None:
            yield from self._scan()
            return
        self._start(None)
        from ..local.executor import _concat
        upstream = _concat([self.upstream(s) for s in stage.inputs])
        try:
            if stage.stream_op is not None:
                planner = STREAM_PLANS.get(type(stage.stream_op))
                groups = planner(stage.stream_op, upstream) if planner else self._on_driver(stage.stream_op, upstream)
            else:
                groups = ([(out, None)] for out in upstream)
            if not stage.operators and self.finish is None:
                yield from self._pass_through(groups)
                return
            chain = Chain(self.run, self.spec())
            yield from self.parallel(groups, lambda group, block: chain.submit(
                "blocks", [cut for _, cut in group], [out.refs[0] for out, _ in group], block, {}))
        finally:
            upstream.close()

    def _scan(self) -> Iterator[Out]:
        stage, config = self.stage, self.run.config
        request = replace(stage.scan_request, parallelism=self.run.parallelism,
                          max_task_bytes=self.run.task_bytes(TARGET_TASK_BYTES, MIN_TASK_BYTES),
                          on_bad_input=None if config.on_error == "raise" else BadInputSink())
        tasks = stage.scan.source.plan_tasks(request)
        self.context.stats.stages[stage.id].tasks_total = len(tasks)
        self._start(len(tasks))

        def key(task) -> str:
            return f"s{stage.id}:{task.description}"

        tasks, skipped = self.skip_completed(tasks, key)
        yield from skipped
        chain = Chain(self.run, self.spec(read_schema=stage.read_schema))
        yield from self.parallel(tasks, lambda task, block: chain.submit("read", task, [], block, _covers(task)), key)

    def _pass_through(self, groups: Iterable[list]) -> Iterator[Out]:
        """Blocks that need no task: whole upstream blocks go on as they are; slices are cut by a task."""
        chain = None

        def submit(group: list, block: str) -> Pending | Out:
            nonlocal chain
            (out, cut) = group[0]
            if len(group) == 1 and (cut is None or cut == (0, out.rows)):
                return out
            if chain is None:
                chain = Chain(self.run, self.spec(operators=()))
            return chain.submit("blocks", [c for _, c in group], [o.refs[0] for o, _ in group], block, {})

        yield from self.parallel(groups, submit)

    def _on_driver(self, stream_op, upstream: Iterator[Out]) -> Iterator[list]:
        """A stream operator this runner cannot plan from row counts: run it here over fetched blocks."""
        tables = (self.run.fetch(out.refs[0]) for out in upstream)
        for table in stream_op.apply(tables):
            yield [(_put(self.run, self.stage.id, table), None)]

    def skip_completed(self, items: list, key: Callable[[Any], str]) -> tuple[list, list[Out]]:
        """A resumed stage's items still to run, and the outputs of those an earlier attempt at this run
        finished: write tasks whose staged files are logged, map tasks whose output is in the run store
        (the exchange restores those itself)."""
        if self.maps_to_checkpoint:
            return RunStore.unfinished_maps(items, key, self.checkpoint.completed, self.context.stats,
                                            self.stage.id), []
        if not self.writes:
            return items, []
        todo, skipped = self.context.store.finished_writes(items, key, self.context.stats, self.stage.id)
        return todo, [_put(self.run, self.stage.id, table) for table in skipped]

    def parallel(self, items: Iterable[Any], submit: Callable[[Any, str], Pending | Out],
                 key: Callable[[Any], str] | None = None) -> Iterator[Out]:
        """Submit a task per item, a bounded window at a time; yield their outputs in submission order."""
        window: deque[tuple[Any, Pending | Out]] = deque()
        source = iter(items)
        stage_stats = self.context.stats.stages[self.stage.id]
        try:
            while True:
                while len(window) < self.run.window:
                    item = next(source, _END)
                    if item is _END:
                        break
                    window.append((item, submit(item, f"s{self.stage.id}-t{next(self._numbers)}")))
                    stage_stats.in_flight = len(window)
                if not window:
                    return
                item, pending = window.popleft()
                stage_stats.in_flight = len(window)
                out = self.settle(pending) if isinstance(pending, Pending) else pending
                if key is not None and self.maps_to_checkpoint:
                    out.key = key(item)
                if key is not None and self.writes:
                    self.context.store.log_task(key(item), self.run.fetch(out.refs[0]).to_pylist())
                # with its window full, the stage produces nothing more until the consumer asks
                held = HELD_BY_CONSUMER if len(window) + 1 >= self.run.window else None
                if held:
                    self.set_state(held)
                started = time.perf_counter()
                yield out
                if held:
                    self.context.stats.add_held(self.stage.id, held, time.perf_counter() - started)
                    self.set_state("")
        finally:
            for _, pending in window:
                if getattr(pending, "actors", None):
                    # an actor runs its calls in submission order: one cancelled before it arrived leaves a
                    # gap that the actor waits 30 s for; let the few queued calls finish instead
                    continue
                for ref in getattr(pending, "reports", ()):
                    try:
                        self.run.ray.cancel(ref)
                    except Exception:  # noqa: BLE001 - cancelling is best effort
                        pass
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def settle(self, pending: Pending) -> Out:
        """Wait for a task's reports; fold them into the run, or raise what the task raised."""
        started = time.time()
        reports = []
        try:
            for ref in pending.reports:
                reports.append(self.run.ray.get(ref))
        except Exception as exc:  # noqa: BLE001 - translated below
            error = self.run.translate(exc)
            self.run.failed(self.stage.id, pending, error, started)
            raise error from error.__cause__
        finally:
            for pool, actor in pending.actors:
                pool.done(actor)
        for number, report in enumerate(reports):
            block = pending.block if number == 0 else f"{pending.block}-u{number}"
            self.run.apply(self.stage, report, block, pending.covers if number == 0 else {})
        return Out(pending.outputs, reports[-1])


def _put(run: RayRun, stage_id: int, table: pa.Table) -> Out:
    report = Report(stage_id, rows=[table.num_rows], bytes=[table.nbytes])
    return Out([run.ray.put(table)], report)


def _covers(task) -> dict:
    """What a read task covers, for its task_start event."""
    if task.rows:
        return {"sources": [{"file": f, "first_row": first, "end_row": end} for f, first, end in task.rows]}
    if task.files:
        return {"sources": [{"file": f, "first_row": None, "end_row": None} for f in task.files]}
    return {}


# ---------------------------------------------------------------- stream operators, planned from row counts

def _limit_slices(op: GlobalLimit, upstream: Iterator[Out]) -> Iterator[list]:
    remaining = op.n
    if remaining <= 0:
        return
    for out in upstream:
        if out.rows >= remaining:
            yield [(out, (0, remaining))]
            return
        remaining -= out.rows
        yield [(out, None)]


def _rebatch_slices(op: Rebatch, upstream: Iterator[Out]) -> Iterator[list]:
    pending: list = []
    count = 0
    for out in upstream:
        offset, rows = 0, out.rows
        while offset < rows:
            take = min(op.rows - count, rows - offset)
            pending.append((out, (offset, take)))
            count += take
            offset += take
            if count == op.rows:
                yield pending
                pending, count = [], 0
    if count:
        yield pending


STREAM_PLANS: dict[type, Callable[[Any, Iterator[Out]], Iterator[list]]] = {
    GlobalLimit: _limit_slices,
    Rebatch: _rebatch_slices,
}

"""Running a physical plan: every stage as tasks on a backend, in order, under backpressure.

Why this module exists: it is the engine's driver half for narrow stages (exchange.py does
wide ones, fused.py fused ones), the same on every backend. A stage's items (read tasks, or
slices of upstream blocks) each become one task running the stage's operator chain
(task.py); the backend says where it runs. Handles to blocks flow from task to task; the
engine fetches only the root stage's blocks, in order. What it learns comes from each task's
small report.

Backpressure and order: each stage keeps a bounded window of tasks in flight (the backend's
`window`, and on the local backend only while their estimated sizes fit the memory budget;
one task is always allowed so nothing deadlocks) and hands results on in submission order,
so output order is deterministic and a slow consumer holds back every producer. Stream
operators (a global limit, re-batching) are planned from the row counts in reports, as slices
of upstream blocks that the next task concatenates.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from ..crash_points import crash_point
from ..errors import ResumeError
from ..io.source import MIN_TASK_BYTES, TARGET_TASK_BYTES, ReadTask
from ..observe.events import Sampler, run_sample
from ..observe.stats import HELD_BY_CONSUMER, HELD_BY_MEMORY
from ..physical.checks import CheckState, CheckStep, verdict_error
from ..physical.operators import GlobalLimit, Rebatch, RowNumbering, WriteStep
from ..physical.stages import (
    ExchangeStage, FusedStage, JoinStage, PhysicalPlan, ScanStage, SortStage, Stage, StreamStage,
)
from ..reliability.run_store import RunStore
from .backend import WORK_FACTOR, Backend, Out
from .context import RunContext
from .preemption import watching
from .reporting import StageReporting, fold_report, log_failed_task
from .task import BadInputSink, ChainSpec, MapSpec, Report

_END = object()
PREEMPTION_POLL_S = 0.05  # how often a wait for a task looks at whether the run was told to stop


def execute(plan: PhysicalPlan, context: RunContext, backend: Backend) -> Iterator[pa.Table]:
    """Run the plan on `backend`; yield its output blocks in order. Closing the iterator stops the run.
    A SIGTERM meanwhile stops it after its running tasks (preemption.py)."""
    backend.start(plan, context)
    context.checks = {step.check.name: CheckState(step.check) for stage in plan.stages() for step in stage.operators
                      if isinstance(step, CheckStep)}
    sampler = Sampler(context.events,
                      lambda: run_sample(context.stats, backend.budget, with_workers=backend.sample_workers)).start()
    failed = True
    try:
        with watching(context.preemption):
            for out in StageRun(context, backend, plan.root).outputs():
                yield backend.fetch(out.handles[0])
        judge_checks(context)
        if context.has_dead_letters:
            context.dead_letters.finish()  # the exact error budget, before anything is committed
        failed = False
    except GeneratorExit:
        failed = False  # the consumer stopped early (a break, take()): not a failure; close() the UDFs
        raise
    finally:
        sampler.stop()
        backend.close(failed, abandon_running=context.preemption.out_of_time)
        context.stats.peak_reserved_bytes = getattr(backend.budget, "peak", 0)
        if context.has_dead_letters:
            context.dead_letters.flush()


def judge_checks(context: RunContext) -> None:
    """The data-quality checks' verdicts, once every row went by: in the stats (summary, run.json, report),
    and a DataQualityError before the commit when a failing check says so."""
    if not context.checks:
        return
    results = [state.result() for state in context.checks.values()]
    context.stats.checks = results
    context.events.emit("checks", results=results)
    error = verdict_error(results, context.run_id)
    if error is not None:
        raise error


def known_rows(tasks) -> int | None:
    """The rows read tasks cover, if each says (a row range of every piece); else None."""
    ranges = [piece for task in tasks for piece in task.rows]
    if not tasks or any(not task.rows for task in tasks) or any(first is None or end is None
                                                                 for _, first, end in ranges):
        return None
    return sum(end - first for _, first, end in ranges)


@dataclass
class Pending:
    ticket: Any  # the backend's
    block: str  # the task's block id, for events
    covers: dict


class StageRun(StageReporting):
    """One stage's stream of finished task outputs, in order; `finish` hands them to an exchange."""

    def __init__(self, context: RunContext, backend: Backend, stage: Stage, finish: MapSpec | None = None,
                 checkpoint=None, consumed: dict[str, dict] | None = None):
        self.context = context
        # a resumed run: outputs of this stage's tasks that finished write tasks downstream took whole (task key ->
        # rows and statistics), which need not be made again
        self.consumed = consumed or {}
        self._groups: dict[str, list] = {}  # a write stream task's key -> the upstream slices it takes
        self.backend = backend
        self.stage = stage
        self.finish = finish
        self._numbers = itertools.count()
        self.checkpoint = checkpoint  # the durable exchange (checkpoint.py) this stage's map tasks feed
        # read tasks have keys (what they read), so each one's map output is logged, and skipped on resume
        self.maps_to_checkpoint = checkpoint is not None and isinstance(stage, ScanStage)
        self.writes = bool(stage.operators) and isinstance(stage.operators[-1], WriteStep) and \
            context.store is not None
        self.skipped_writes = 0

    def spec(self, **fields) -> ChainSpec:
        fields.setdefault("operators", self.stage.operators)
        fields.setdefault("labels", self.stage.operator_labels if fields["operators"] == self.stage.operators
                          else tuple(op.name for op in fields["operators"]))
        fields.setdefault("finish", self.finish)
        return ChainSpec(self.stage.id, self.context.run_id, self.context.config, **fields)

    def outputs(self) -> Iterator[Out]:
        return self._reported(self._counted(self._outputs()))

    def upstream(self, stage: Stage, finish: MapSpec | None = None, checkpoint=None,
                 consumed: dict[str, dict] | None = None) -> Iterator[Out]:
        return StageRun(self.context, self.backend, stage, finish, checkpoint, consumed).outputs()

    def _outputs(self) -> Iterator[Out]:
        return STAGE_RUNNERS[type(self.stage)](self)

    # ------------------------------------------------------------ stage kinds

    def scan(self) -> Iterator[Out]:
        stage, config = self.stage, self.context.config
        request = replace(stage.scan_request, parallelism=self.backend.parallelism,
                          max_task_bytes=self.backend.task_bytes(TARGET_TASK_BYTES, MIN_TASK_BYTES),
                          on_bad_input=None if config.on_error == "raise" else BadInputSink())
        tasks = stage.scan.source.plan_tasks(request)
        self.context.stats.stages[stage.id].tasks_total = len(tasks)
        self._start(len(tasks), known_rows(tasks))

        def key(task) -> str:
            return f"s{stage.id}:{task.description}"

        tasks, skipped = self.skip_completed(tasks, key)
        yield from skipped
        chain = self.backend.chain(self.spec(read_schema=stage.read_schema))
        yield from self.parallel(tasks, lambda task, block: self.submit(chain, "read", task, [], block, covers(task)),
                                 lambda task: task.estimated_bytes, key)

    def stream(self) -> Iterator[Out]:
        stage = self.stage
        self._start(None)
        consumed = self.consumed_upstream() if self.writes and self.context.resumed else None
        upstream = concat_streams([self.upstream(s, consumed=consumed) for s in stage.inputs])
        try:
            planner = STREAM_PLANS.get(type(stage.stream_op)) if stage.stream_op is not None else None
            groups = planner(stage.stream_op, upstream) if planner else ([(out, None)] for out in upstream)
            numbering = stage.stream_op if isinstance(stage.stream_op, RowNumbering) else None
            if not stage.operators and self.finish is None and numbering is None:
                yield from self._pass_through(groups)
                return
            chain = self.backend.chain(self.spec())
            if numbering is not None:
                yield from self.parallel(numbered_groups(groups), lambda item, block: self.submit(
                    chain, "numbered", ([cut for _, cut in item[1]], item[0], numbering),
                    [out.handles[0] for out, _ in item[1]], block, {}), lambda item: group_bytes(item[1]))
                return
            yield from self.parallel(groups, lambda group, block: self.submit_group(chain, group, block),
                                     group_bytes, self.stream_key)
        finally:
            upstream.close()

    def fused(self) -> Iterator[Out]:
        """The fused query's result, in slices, through the stage's operators (and a downstream exchange's
        partitioning) in parallel tasks."""
        from .fused import FusedRun
        self._start(None)
        outputs = FusedRun(self).outputs()
        if not self.stage.operators and self.finish is None:
            yield from outputs
            return
        chain = self.backend.chain(self.spec())
        yield from self.parallel(outputs, lambda out, block: self.submit(
            chain, "blocks", [None], [out.handles[0]], block, {}), lambda out: out.bytes)

    def exchanged(self) -> Iterator[Out]:
        """Reduce tasks run the stage's operators and hand their output on themselves (exchange.py)."""
        from .exchange import ExchangeRun
        self._start(None)
        yield from ExchangeRun(self).outputs()

    def _pass_through(self, groups: Iterable[list]) -> Iterator[Out]:
        """Blocks that need no task: whole upstream blocks go on as they are; slices are cut by a task."""
        chain = None

        def submit(group: list, block: str) -> Pending | Out:
            nonlocal chain
            (out, cut) = group[0]
            if len(group) == 1 and (cut is None or cut == (0, out.rows)):
                return out
            if chain is None:
                chain = self.backend.chain(self.spec(operators=()))
            return self.submit(chain, "blocks", [c for _, c in group], [o.handles[0] for o, _ in group], block, {})

        yield from self.parallel(groups, submit, group_bytes)

    # ------------------------------------------------------------ tasks

    def submit(self, chain, kind: str, payload: Any, args: list, block: str, covered: dict) -> Pending:
        return Pending(chain.submit(kind, payload, args, block), block, covered)

    def put(self, table: pa.Table, skipped: bool = False) -> Out:
        """A block made on the driver, as a task output."""
        return Out([self.backend.put(table)], Report(self.stage.id, rows=[table.num_rows], bytes=[table.nbytes]),
                   skipped=skipped)

    def skip_completed(self, items: list, key: Callable[[Any], str]) -> tuple[list, list[Out]]:
        """A resumed map stage's items still to run: those whose output is not in the run store (the exchange
        restores the others itself). Finished write tasks are skipped as they come up (`parallel`)."""
        if self.maps_to_checkpoint:
            return RunStore.unfinished_maps(items, key, self.checkpoint.completed, self.context.stats,
                                            self.stage.id), []
        return items, []

    def stream_key(self, group: list) -> str | None:
        """A stream task's key (`group_key`); a write task's slices are kept until it is logged."""
        key = group_key(self.stage.id, group)
        if key is not None and self.writes:
            self._groups[key] = group
        return key

    def submit_group(self, chain, group: list, block: str) -> Pending:
        if any(out.handles[0] is None for out, _ in group):  # an upstream output a resume did not make again
            raise ResumeError(f"Cannot resume run {self.context.run_id}: stage {self.stage.id} regroups its input "
                              f"differently from the attempt that was killed. Run the job again from the start.")
        inputs = [out.identity for out, _ in group if out.identity is not None]
        return self.submit(chain, "blocks", [cut for _, cut in group], [out.handles[0] for out, _ in group], block,
                           {"inputs": inputs} if inputs else {})

    def consumed_upstream(self) -> dict[str, dict]:
        """Upstream task outputs that this write stage's finished tasks (earlier attempts) took whole: each
        one's rows and operator statistics. A resume does not run those upstream tasks again."""
        taken: dict[str, int] = {}
        rows: dict[str, int] = {}
        ops: dict[str, list] = {}
        for key, record in self.context.store.completed().items():
            if not key.startswith(f"s{self.stage.id}:"):
                continue
            for identity, _, count, total in record.get("takes", []):
                taken[identity] = taken.get(identity, 0) + count
                rows[identity] = total
            ops.update(record.get("upstream_ops", {}))
        return {identity: {"rows": rows[identity], "ops": ops[identity]} for identity in taken
                if taken[identity] == rows[identity] > 0 and identity in ops}

    def consumed_output(self, key: str | None) -> Out | None:
        """Stands in for the output of upstream task `key` when finished write tasks took it whole: its rows,
        for regrouping, and no data (no task that is run reads it)."""
        info = self.consumed.get(key) if key is not None else None
        if info is None:
            return None
        for op in info["ops"]:
            self.context.stats.record(*op)
        self.context.stats.emit("checkpoint", stage=self.stage.id, what="read skipped", detail=key)
        return Out([None], Report(self.stage.id, rows=[info["rows"]], bytes=[0]), identity=key)

    def finished_write(self, key: str | None) -> Out | None:
        """The output of write task `key` when an earlier attempt at this run finished it (its staged files are
        logged in the run store), else None: it is not run again."""
        if not self.writes or key is None:
            return None
        written = self.context.store.finished_write(key, self.context.stats, self.stage.id)
        if written is None:
            return None
        self.skipped_writes += 1
        out = self.put(written, skipped=True)
        out.identity = key
        out.report.written_rows, out.report.files = sum(written["rows"].to_pylist()), written.num_rows
        return out

    def log_finished(self, key: str, out: Out) -> None:
        """A write task finished: log it in the run store, after the bad records it found are on disk, so that
        a resume that skips it keeps them."""
        if self.context.has_dead_letters:
            self.context.dead_letters.flush()
        extra = {}
        group = self._groups.pop(key, None)
        if group is not None:  # a stream task: what it took of each upstream output, and their statistics
            extra["takes"] = [[o.identity, *(cut if cut is not None else (0, o.rows)), o.rows] for o, cut in group]
            extra["upstream_ops"] = {o.identity: [list(op) for op in o.ops] for o, cut in group
                                     if (cut is None or cut[0] == 0) and o.ops}
        self.context.store.log_task(key, self.backend.fetch(out.handles[0]).to_pylist(), out.ops, **extra)
        crash_point("after-write-task")

    def parallel(self, items: Iterable[Any], submit: Callable[[Any, str], Pending | Out],
                 estimate: Callable[[Any], int], key: Callable[[Any], str] | None = None) -> Iterator[Out]:
        """Submit a task per item, a bounded window at a time; yield their outputs in submission order.

        An item's estimate can be far below what its task makes: a read task's estimate knows only
        the source's columns, not those that with_columns or a UDF add. So each estimate is scaled
        by the largest ratio of a result's size to its item's estimate measured so far. A stage
        that hands blocks to UDF worker processes reserves one more copy per task (the block's
        copy in shared memory), and runs its first task alone until it has been measured.
        """
        window: deque[tuple[Any, Pending | Out, int, int]] = deque()
        source = iter(items)
        waiting: Any = _END
        budget, limit = self.backend.budget, self.backend.window
        stage_stats = self.context.stats.stages[self.stage.id]
        feeds_workers = self.backend.copies_blocks_to_workers(self.stage)
        factor = WORK_FACTOR + (1 if feeds_workers else 0)
        scale, measured = 1.0, not feeds_workers
        held_by_memory = False
        try:
            while True:
                while len(window) < (limit if measured else 1) and not self.context.preemption.requested:
                    if waiting is _END:
                        waiting = next(source, _END)
                        if waiting is _END:
                            break
                    item_key = key(waiting) if key is not None else None
                    done = self.finished_write(item_key) or self.consumed_output(item_key)
                    if done is not None:
                        window.append((waiting, done, 0, 0))
                        waiting = _END
                        continue
                    guess = estimate(waiting)
                    reserve = int(guess * scale) * factor
                    if not budget.try_reserve(reserve, force=not window):
                        held_by_memory = True
                        break
                    pending = submit(waiting, f"s{self.stage.id}-t{next(self._numbers)}")
                    if item_key is not None and isinstance(pending, Pending):
                        pending.covers = {"key": item_key, **pending.covers}  # names the task in its events
                    window.append((waiting, pending, reserve, guess))
                    waiting = _END
                    stage_stats.in_flight = len(window)
                    self.context.stats.admitted(self.stage.id, budget.reserved)
                if self.context.preemption.requested:
                    self._withdraw_waiting(window, budget)
                if not window:
                    if self.context.preemption.requested:
                        raise self.context.preemption.error(resumable=self.context.store is not None)
                    if self.skipped_writes:
                        self.context.stats.note(f"stage {self.stage.id}: {self.skipped_writes} write task(s) were "
                                                f"finished by an earlier attempt at this run and were skipped")
                    return
                item, pending, reserved, guess = window.popleft()
                stage_stats.in_flight = len(window)
                try:
                    out = self._wait(pending, HELD_BY_MEMORY if held_by_memory else None,
                                     lambda: self._withdraw_waiting(window, budget))
                    held_by_memory = False
                    if guess > 0:
                        scale = max(scale, out.bytes / guess)
                    measured = True
                    item_key = key(item) if key is not None else None
                    if item_key is not None and isinstance(pending, Pending):
                        out.identity = item_key
                        if self.maps_to_checkpoint:
                            out.key = item_key
                    # with its window full, the stage produces nothing more until the consumer asks
                    held = HELD_BY_CONSUMER if len(window) + 1 >= limit else None
                    if held:
                        self.set_state(held)
                    started = time.perf_counter()
                    yield out  # the reservation covers the result until the consumer asks for the next
                    if held:
                        self.context.stats.add_held(self.stage.id, held, time.perf_counter() - started)
                        self.set_state("")
                finally:
                    budget.release(reserved)
        finally:
            for _, pending, reserved, _ in window:
                if isinstance(pending, Pending):
                    self.backend.cancel(pending.ticket)
                budget.release(reserved)
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _withdraw_waiting(self, window: deque, budget) -> None:
        """A preempted stage keeps only the tasks already running: those still waiting for a worker are
        withdrawn from the window (they run again on resume)."""
        kept = []
        for entry in window:
            pending, reserved = entry[1], entry[2]
            if isinstance(pending, Pending) and self.backend.withdraw(pending.ticket):
                budget.release(reserved)
            else:
                kept.append(entry)
        window.clear()
        window.extend(kept)

    def _wait(self, pending: Pending | Out, held: str | None, withdraw: Callable[[], None]) -> Out:
        """The oldest task's output; time spent waiting is held time when admission was refused. A SIGTERM
        while it waits withdraws the tasks not yet started and, once the grace period is over, stops
        waiting (preemption.py)."""
        if not isinstance(pending, Pending):
            return pending
        if held is not None:
            self.set_state(held)
        started = time.perf_counter()
        try:
            preemption, withdrawn = self.context.preemption, False
            while (preemption.requested or self.backend.polls_cheaply) and \
                    not self.backend.ready(pending.ticket, PREEMPTION_POLL_S):
                if preemption.requested and not withdrawn:
                    withdraw()
                    withdrawn = True
                if preemption.out_of_time:  # the grace period is over: what still runs is redone on resume
                    raise preemption.error(resumable=self.context.store is not None)
            return self.settle(pending)
        finally:
            if held is not None:
                self.context.stats.add_held(self.stage.id, held, time.perf_counter() - started)
                self.set_state("")

    def fold(self, report: Report, block: str, covered: dict, before_end: Callable[[], None] | None = None,
             task_key: str | None = None) -> None:
        fold_report(self.context, self.stage, report, block, covered, before_end, task_key)

    def settle(self, pending: Pending) -> Out:
        """Wait for a task; fold its reports into the run, or raise what the task raised."""
        started = time.time()
        try:
            handles, reports = self.backend.settle(pending.ticket)
        except BaseException as error:
            log_failed_task(self.context, self.stage.id, pending.block, pending.covers, error, started)
            raise
        out = Out(handles, reports[-1], ops=[op for report in reports for op in report.ops])
        key = pending.covers.get("key")
        for number, report in enumerate(reports):
            block = pending.block if number == 0 else f"{pending.block}-u{number}"
            log = self.writes and key is not None and number == len(reports) - 1
            self.fold(report, block, pending.covers if number == 0 else {},
                      (lambda: self.log_finished(key, out)) if log else None, key)
        return out


def group_key(stage_id: int, group: list) -> str | None:
    """A stream task's key: the rows it takes (each upstream task's key and the slice of its output), so it
    is the same in every attempt at the run that reads the same input; None when an upstream output has none."""
    parts = []
    for out, cut in group:
        if out.identity is None:
            return None
        parts.append(f"{out.identity}[{'' if cut is None else f'{cut[0]}:{cut[1]}'}]")
    return f"s{stage_id}:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def group_bytes(group: list) -> int:
    """The bytes a group of (upstream output, cut) slices holds, for admission."""
    total = 0
    for out, cut in group:
        total += out.bytes if cut is None or not out.rows else out.bytes * cut[1] // out.rows
    return total


def covers(task: ReadTask) -> dict:
    """What a read task covers, for its task_start event."""
    if task.rows:
        return {"sources": [{"file": f, "first_row": first, "end_row": end} for f, first, end in task.rows]}
    if task.files:
        return {"sources": [{"file": f, "first_row": None, "end_row": None} for f in task.files]}
    return {}


def concat_streams(streams: list[Iterator[Out]]) -> Iterator[Out]:
    """Chain streams in order; closing the chain closes every stream, started or not."""
    try:
        for stream in streams:
            yield from stream
    finally:
        for stream in streams:
            stream.close()


STAGE_RUNNERS: dict[type, Callable[[StageRun], Iterator[Out]]] = {
    ScanStage: StageRun.scan,
    StreamStage: StageRun.stream,
    FusedStage: StageRun.fused,
    ExchangeStage: StageRun.exchanged,
    SortStage: StageRun.exchanged,
    JoinStage: StageRun.exchanged,
}


# ---------------------------------------------------------------- stream operators, planned from row counts

def limit_slices(op: GlobalLimit, upstream: Iterator[Out]) -> Iterator[list]:
    remaining = op.n
    if remaining <= 0:
        return
    for out in upstream:
        if out.rows >= remaining:
            yield [(out, (0, remaining))]
            return
        remaining -= out.rows
        yield [(out, None)]


def rebatch_slices(op: Rebatch, upstream: Iterator[Out]) -> Iterator[list]:
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


def numbered_groups(groups: Iterable[list]) -> Iterator[tuple[int, list]]:
    """Each group with the number of its first row in the stream, counted from the row counts of the
    groups before it (a RowNumbering's tasks are told where their block starts)."""
    first_row = 0
    for group in groups:
        yield first_row, group
        first_row += sum(out.rows if cut is None else cut[1] for out, cut in group)


def whole_blocks(op: RowNumbering, upstream: Iterator[Out]) -> Iterator[list]:
    for out in upstream:
        yield [(out, None)]


STREAM_PLANS: dict[type, Callable[[Any, Iterator[Out]], Iterator[list]]] = {
    GlobalLimit: limit_slices,
    Rebatch: rebatch_slices,
    RowNumbering: whole_blocks,
}

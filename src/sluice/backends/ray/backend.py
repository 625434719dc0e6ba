"""The Ray backend: tasks as Ray tasks and actor calls, blocks and exchange pieces as object refs.

Why this module exists: it is what the Ray runner supplies to the engine core
(engine/backend.py). A stage's chain is put in the object store once and each task runs it
in a Ray worker (remote.py); a chain with class UDFs runs in the classes' actor pools
instead (actors.py), split at each class: the first class's actor runs everything up to
the next class (the read or reduce included, so no task has to hand it the block), and each
later class starts a segment run by its own pool. Blocks stay in the object store and flow
from task to task as ObjectRefs; reduce tasks get their pieces as top-level arguments, so
Ray's locality-aware scheduling places each task on the node that holds most of its input.
Ray retries a task whose worker died. Exceptions come back as the user's, translated from
Ray's wrappers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from ...engine.backend import WORK_FACTOR, Backend, Exchange
from ...engine.task import ChainSpec, Report
from ...errors import RemoteUserCodeError, RunnerError
from ...kernels.udf_errors import unpickle_exception
from ...physical.operators import MapBatchesStep
from .cluster import cluster_cpus, connect, storage_environment
from .remote import remote


class NoBudget:
    """Ray admits tasks by count (the window), not by the driver's memory."""

    reserved = 0
    peak = 0

    def __init__(self, limit: int):
        self.limit = limit

    def try_reserve(self, nbytes: int, force: bool = False, share: float = 1.0) -> bool:
        return True

    def release(self, nbytes: int) -> None:
        pass


@dataclass
class RayTicket:
    outputs: list  # the last segment's data refs
    reports: list  # one report ref per segment, in order
    actors: list  # (pool, actor) per actor segment, to release when done


class RefExchange(Exchange):
    """An exchange's pieces as object refs; a released partition's refs are dropped, so Ray frees the
    pieces once the tasks reading them finish."""

    def __init__(self, ray, schema: pa.Schema, partitions: int):
        super().__init__(schema, partitions)
        self.ray = ray
        self._pieces: list[list[tuple]] = [[] for _ in range(partitions)]  # (ref, rows, bytes)

    def keep(self, partition: int, handle, rows: int, size: int) -> None:
        self._pieces[partition].append((handle, rows, size))

    def pieces(self, partition: int) -> list[tuple]:
        return list(self._pieces[partition])

    def release(self, partition: int) -> None:
        self._pieces[partition] = []

    def add_stored(self, partition: int, location, found, rows: int, size: int, stored: int) -> None:
        """One task per partition loads its ranges of the files into the object store."""
        ref = remote("load_partition").remote(location, found, self.schema)
        self._pieces[partition].append((ref, rows, size))
        self.rows[partition] += rows
        self.bytes[partition] += size
        self.stored[partition] += stored


class RayChain:
    """A stage's operator chain as submitted: one task, or segments split at class UDFs."""

    def __init__(self, backend: RayBackend, spec: ChainSpec):
        ops = spec.operators
        cuts = [i for i, op in enumerate(ops) if isinstance(op, MapBatchesStep) and op.node.is_class]
        bounds = [0] + cuts[1:] + [len(ops)]
        self.ray = backend.ray
        self.segments = []
        for number, (start, end) in enumerate(itertools.pairwise(bounds)):
            last = number == len(bounds) - 2
            part = replace(spec, operators=ops[start:end], labels=spec.labels[start:end],
                           first_index=spec.first_index + start, finish=spec.finish if last else None)
            if number > 0:
                part = replace(part, reducer=None, read_schema=None, input_schemas=())
            pool = backend.pool(ops[cuts[number]]) if cuts else None
            options, hide = backend.task_options(part.operators) if pool is None else ({}, pool.hides_gpus)
            part = replace(part, hide_gpus=hide)
            self.segments.append((pool, backend.ray.put(part), part.outputs + 1, options))

    def submit(self, kind: str, payload: Any, args: list, block: str) -> RayTicket:
        reports, actors, outputs = [], [], None
        for number, (pool, spec_ref, returns, options) in enumerate(self.segments):
            part_block = block if number == 0 else f"{block}-u{number}"
            if number > 0:
                kind, payload, args = "blocks", [None], [outputs[0]]
            if pool is None:
                refs = remote("stage_task").options(num_returns=returns, **options).remote(
                    spec_ref, kind, payload, part_block, *args)
            else:
                actor = pool.pick()
                actors.append((pool, actor))
                refs = actor.run.options(num_returns=returns).remote(spec_ref, kind, payload, part_block, *args)
            outputs, report = refs[:-1], refs[-1]
            reports.append(report)
        return RayTicket(outputs, reports, actors)


class RayBackend(Backend):
    name = "ray"
    sample_workers = True  # a Ray instance this driver started (ray.init) runs as its children: count them

    def __init__(self, config):
        self.config = config
        self.budget = NoBudget(config.memory_budget)
        self.pools: dict[int, Any] = {}  # id(MapBatchesStep) -> ActorPool
        self._gpu_notes: set[int] = set()

    def start(self, plan, context) -> None:
        self.ray = connect(context.config)
        self.context = context
        self.stats = context.stats
        self.parallelism = cluster_cpus()
        # as on the local backend (2 x num_threads), and every CPU of a larger cluster busy with one to spare
        self.window = max(self.config.max_tasks_in_flight, self.parallelism + 1)
        self.environ = tuple(sorted(storage_environment().items()))

    def close(self, failed: bool, abandon_running: bool = False) -> None:
        pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            pool.close(graceful=not failed)

    def task_bytes(self, ceiling: int, floor: int) -> int:
        """A task size that lets every CPU hold one within the memory budget (as on the local backend)."""
        return min(ceiling, max(floor, self.config.memory_budget // (WORK_FACTOR * 2 * self.parallelism)))

    def chain(self, spec: ChainSpec) -> RayChain:
        return RayChain(self, replace(spec, environ=self.environ))

    def settle(self, ticket: RayTicket) -> tuple[list, list[Report]]:
        try:
            reports = [self.ray.get(ref) for ref in ticket.reports]
        except Exception as exc:  # noqa: BLE001 - translated into the error the task raised
            error = self.translate(exc)
            raise error from error.__cause__
        finally:
            for pool, actor in ticket.actors:
                pool.done(actor)
        return ticket.outputs, reports

    def ready(self, ticket: RayTicket, timeout: float) -> bool:
        done, _ = self.ray.wait(ticket.reports, num_returns=len(ticket.reports), timeout=timeout)
        return len(done) == len(ticket.reports)

    def cancel(self, ticket: RayTicket) -> None:
        if ticket.actors:
            # an actor runs its calls in submission order: one cancelled before it arrived leaves a gap that
            # the actor waits 30 s for; let the few queued calls finish instead
            return
        for ref in ticket.reports:
            try:
                self.ray.cancel(ref)
            except Exception:  # noqa: BLE001 - cancelling is best effort
                pass

    def call(self, name: str, args: list, returns: int = 1) -> list:
        refs = remote("call_body").options(num_returns=returns).remote(name, returns, *args)
        return refs if returns > 1 else [refs]

    def fetch(self, handle):
        try:
            return self.ray.get(handle)
        except Exception as exc:  # noqa: BLE001 - translated into the error the user's code raised
            error = self.translate(exc)
            raise error from error.__cause__

    def put(self, table: pa.Table):
        return self.ray.put(table)

    def exchange(self, schema: pa.Schema, partitions: int, stage_id: int) -> RefExchange:
        return RefExchange(self.ray, schema, partitions)

    # ------------------------------------------------------------ Ray specifics

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

    def translate(self, exc: BaseException) -> BaseException:
        """The exception to raise for a failed task: the one raised in it, or a RunnerError saying what Ray said."""
        exceptions = self.ray.exceptions
        if isinstance(exc, exceptions.RayTaskError) and isinstance(getattr(exc, "cause", None), BaseException):
            cause = exc.cause
            if isinstance(cause, exceptions.RayError):
                return self.translate(cause)
            info = getattr(cause, "info", None)
            if isinstance(cause, RemoteUserCodeError) and isinstance(info, dict) and info.get("pickled"):
                cause.__cause__ = unpickle_exception(info["pickled"])
            elif getattr(cause, "remote_cause", None):
                cause.__cause__ = unpickle_exception(cause.remote_cause)
            return cause
        if isinstance(exc, exceptions.RayError):
            return RunnerError(f"Ray failed to run a task of this job: {type(exc).__name__}: {exc}")
        return exc

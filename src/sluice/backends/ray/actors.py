"""Class UDFs as Ray actor pools, with the minimum size reserved all-or-nothing (gang scheduling).

Why this module exists: a `map_batches` class holds warm state (a model), so it runs in
long-lived actors, one instance each, not in tasks. A pool's minimum size is reserved as one
placement group of `min` bundles ({CPU: num_cpus, GPU: num_gpus, memory}): either every
bundle is granted or none is, so two pipelines that each need most of the cluster never sit
half-started, holding what the other needs; the second one waits for the first to finish. If
the reservation is not granted within SLUICE_RAY_POOL_TIMEOUT_S (default 300 s), the run
fails with a SluiceError that says what was asked and what the cluster has. Past the
minimum, the pool grows elastically up to its maximum, outside the placement group, while
every actor is busy.

Memory per actor: `memory=` when declared, else what earlier local runs of the same operator
measured (the profile store of backends/local/udf_pools.py), passed to Ray as its `memory`
resource. Fractional `num_gpus` goes to Ray as is; on a cluster without GPUs the request is
dropped (with a note) and the actors run on the CPU, as the local runner does.

Inside an actor, the stage's operator chain runs as in a task (remote.chain_task); the
class's step runs on the actor's own instance through the task's UdfRunner (`InstanceRunner`),
the hook the local backend uses for its process pools.
"""

from __future__ import annotations

import os
import time

import pyarrow as pa

from ...config import seconds_from_env
from ...engine.task import worker_identity
from ...errors import RunnerError
from ...kernels.udf import apply_function
from ...observe.stats import format_bytes
from ...physical.operators import MapBatchesStep
from .remote import chain_task

POOL_TIMEOUT_ENV = "SLUICE_RAY_POOL_TIMEOUT_S"
DEFAULT_POOL_TIMEOUT_S = 300.0


def pool_timeout_s() -> float:
    return seconds_from_env(POOL_TIMEOUT_ENV, DEFAULT_POOL_TIMEOUT_S)


class UdfActor:
    """One instance of the user's class, and the chain of operators around it."""

    def __init__(self, node, hide_gpus: bool = False):
        self.node = node
        self.failure = None
        self.instance = None
        options = node.options
        if hide_gpus:  # num_gpus asked on a cluster without GPUs: frameworks see none and use the CPU
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        try:
            self.instance = node.fn(*options.constructor_args, **dict(options.constructor_kwargs))
        except BaseException as exc:  # noqa: BLE001 - reported by ready() and every call, as the local pools do
            from ...kernels.udf_errors import describe_exception
            self.failure = describe_exception(exc)
            self.failure["phase"] = "init"

    def _check(self) -> None:
        if self.failure is not None:
            from ...kernels.udf_errors import init_error
            raise init_error(self.failure, f"class {self.node.fn_name}", True)

    def ready(self) -> dict:
        self._check()
        return worker_identity()

    def run(self, spec, kind, payload, block, *pieces) -> list:
        self._check()
        return chain_task(spec, kind, payload, block, pieces, InstanceRunner(self.instance))

    def close(self) -> str | None:
        closer = getattr(self.instance, "close", None)
        if closer is None:
            return None
        try:
            closer()
        except BaseException as exc:  # noqa: BLE001 - reported as a note, the run's result stands
            return f"{type(exc).__name__}: {exc}"
        return None


class InstanceRunner:
    """The task's UdfRunner inside an actor: the segment's class step runs on the actor's instance."""

    def __init__(self, instance):
        self.instance = instance

    def runs(self, step) -> bool:
        return step.node.is_class

    def run(self, step, table: pa.Table, stage_id: int) -> pa.Table:
        node = step.node
        return apply_function(self.instance, table, node.batch_format, dict(node.fn_kwargs), node.fn_name)

    def take_worker_cpu_s(self) -> float:
        return 0.0  # the instance runs in the actor's own task thread, whose CPU time is measured already


class ActorPool:
    """The actors of one class UDF in one run: the reserved minimum, then elastic growth to the maximum."""

    def __init__(self, ray, step: MapBatchesStep, context, cluster_cpus: int, held_cpus: float = 0.0):
        from ...kernels.udf import parse_concurrency
        self.ray, self.step, self.context = ray, step, context
        node, options = step.node, step.node.options
        self.name = node.fn_name
        # Actors hold their CPUs while the run lasts; the tasks feeding them need one too, or nothing moves.
        fit = max(1, int((cluster_cpus - 1 - held_cpus) // options.num_cpus))
        self.low, self.high = parse_concurrency(options.concurrency, fit)
        if self.high > fit:
            self.context.stats.note(
                f"map_batches {self.name}: at most {fit} actor(s), not {self.high}: the Ray cluster has "
                f"{cluster_cpus} CPUs, {held_cpus:g} held by the run's other pools, and the tasks that feed the pool "
                f"need one")
            self.low, self.high = min(self.low, fit), fit
        self.resources = self._resources(options, cluster_cpus)
        self.actors: list = []
        self.load: dict = {}  # actor -> tasks submitted and not yet reported
        self.pending: dict = {}  # elastic actors asked for, by the ref that says they are ready
        self.group = None
        self._remote = ray.remote(UdfActor)
        self._start()

    def _resources(self, options, cluster_cpus: int) -> dict:
        resources = {"CPU": float(options.num_cpus)}
        gpus = float(options.num_gpus)
        self.hides_gpus = bool(gpus) and not self.ray.cluster_resources().get("GPU")
        if self.hides_gpus:
            self.context.stats.note(f"map_batches {self.name}: num_gpus={gpus:g} but the Ray cluster has no GPU; "
                                    f"its actors run on the CPU")
            gpus = 0.0
        if gpus:
            resources["GPU"] = gpus
        memory, source = self._memory(options)
        if memory:
            resources["memory"] = float(memory)
            self.context.stats.note(f"map_batches {self.name}: each actor reserves {format_bytes(memory)} of Ray "
                                    f"memory ({source})")
        return resources

    def _memory(self, options) -> tuple[int | None, str]:
        if options.memory is not None:
            return options.memory, "declared"
        schema = self.step.node.input.schema
        if schema is None:
            return None, ""
        from ...kernels.udf_profiles import PROFILE_DIR, ProfileStore, fingerprint
        store = ProfileStore(os.path.join(self.context.config.runs_dir, PROFILE_DIR))
        learned = (store.learned(fingerprint(self.step.node, schema)) or {}).get("peak_task_bytes")
        return (int(learned), "learned by earlier runs") if learned else (None, "")

    def _options(self) -> dict:
        options = {"num_cpus": self.resources["CPU"], "num_gpus": self.resources.get("GPU", 0.0),
                   "max_restarts": 3, "max_task_retries": 3}  # a killed actor is replaced, its task retried
        if "memory" in self.resources:
            options["memory"] = self.resources["memory"]
        return options

    def _start(self) -> None:
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        ray, timeout = self.ray, pool_timeout_s()
        self.group = placement_group([dict(self.resources)] * self.low, strategy="PACK")
        started = time.perf_counter()
        if not self.group.wait(timeout_seconds=timeout):
            remove_placement_group(self.group)
            self.group = None
            asked = ", ".join(f"{k}={format_bytes(int(v)) if k == 'memory' else f'{v:g}'}"
                              for k, v in self.resources.items())
            have = ray.cluster_resources()
            free = ray.available_resources()
            raise RunnerError(
                f"map_batches {self.name}: Ray could not reserve the pool's minimum of {self.low} actor(s) "
                f"({asked} each) within {timeout:g}s; the cluster has CPU={have.get('CPU', 0):g} "
                f"(free {free.get('CPU', 0):g}), GPU={have.get('GPU', 0):g} (free {free.get('GPU', 0):g}). The "
                f"reservation is all-or-nothing, so no actor was started. Lower concurrency's minimum, num_cpus or "
                f"num_gpus, wait for other jobs to finish, or raise {POOL_TIMEOUT_ENV}.")
        waited = time.perf_counter() - started
        if waited >= 1:
            self.context.stats.note(f"map_batches {self.name}: waited {waited:.1f}s for the cluster to grant the "
                                    f"pool's {self.low} actor(s)")
        for index in range(self.low):
            strategy = PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=index)
            self.actors.append(self._remote.options(scheduling_strategy=strategy, **self._options()).remote(
                self.step.node, self.hides_gpus))
        try:
            ray.get([actor.ready.remote() for actor in self.actors])
        except Exception:
            self.close(graceful=False)
            raise
        self.load = {actor: 0 for actor in self.actors}
        self.context.stats.note(f"map_batches {self.name}: {self.low} Ray actor(s) (concurrency {self.low}-{self.high}"
                                f", {self.resources['CPU']:g} CPU each, minimum reserved as a placement group)")

    @property
    def most_cpus(self) -> float:
        """The CPUs the pool may hold at its largest."""
        return self.high * self.resources["CPU"]

    def pick(self):
        """The least busy ready actor; while every actor is busy, ask for one more (up to the maximum)."""
        self._adopt_ready()
        actor = min(self.actors, key=lambda a: self.load[a])
        if self.load[actor] > 0 and len(self.actors) + len(self.pending) < self.high:
            extra = self._remote.options(**self._options()).remote(self.step.node, self.hides_gpus)
            self.pending[extra.ready.remote()] = extra
        self.load[actor] += 1
        return actor

    def _adopt_ready(self) -> None:
        if not self.pending:
            return
        ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        for probe in ready:
            actor = self.pending.pop(probe)
            try:
                self.ray.get(probe)
            except Exception:  # noqa: BLE001 - an elastic actor that cannot start is not needed
                continue
            self.actors.append(actor)
            self.load[actor] = 0
            self.context.stats.note(f"map_batches {self.name}: the pool grew to {len(self.actors)} actor(s)")

    def done(self, actor) -> None:
        if actor in self.load:
            self.load[actor] = max(0, self.load[actor] - 1)

    def close(self, graceful: bool) -> None:
        from ray.util.placement_group import remove_placement_group
        actors = self.actors + list(self.pending.values())
        if graceful and self.actors:
            try:
                for problem in self.ray.get([actor.close.remote() for actor in self.actors], timeout=60):
                    if problem:
                        self.context.stats.note(f"map_batches {self.name}: close() raised {problem}")
            except Exception as exc:  # noqa: BLE001 - closing is best effort once the work is done
                self.context.stats.note(f"map_batches {self.name}: closing its actors failed: {exc}")
        for actor in actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors, self.pending, self.load = [], {}, {}
        if self.group is not None:
            remove_placement_group(self.group)
            self.group = None

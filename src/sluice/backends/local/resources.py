"""How many UDF workers a pool may run, and which GPUs and how many threads each one gets.

Why this module exists: these decisions are pure functions of the options and of what the
machine has, kept apart from the process machinery (workers.py) so that they are unit-tested
without processes and without GPUs (pass a fake device list).

- `concurrency` is n (a fixed pool) or (min, max) (an autoscaling pool); its default is the
  number of CPUs divided by `num_cpus`.
- `num_cpus` (default 1) is the CPUs one worker may use: it sets the default concurrency, and
  each worker's native thread pools (OMP/MKL/OpenBLAS, Polars, Arrow) to ceil(num_cpus)
  threads, unless the user already set those variables. Workers are not pinned to cores.
- `num_gpus` is the GPUs one worker needs: a fraction below 1 (0.5: two workers share a GPU)
  or a whole number. Worker slot i gets CUDA_VISIBLE_DEVICES from `gpu_slots`, which spreads
  fractional workers across the GPUs before doubling up, and the number of slots caps the
  pool's size. The devices are the parent's CUDA_VISIBLE_DEVICES if set, else /dev/nvidiaN.
  A GPU is never required: with num_gpus > 0 on a machine without one, workers get an empty
  CUDA_VISIBLE_DEVICES (so frameworks fall back to the CPU) and concurrency is not capped.
"""

from __future__ import annotations

import logging
import math
import os
import re
from typing import Mapping, Sequence

from ...errors import PlanError

log = logging.getLogger("sluice.workers")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS")


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_concurrency(num_cpus: float, cpus: int | None = None) -> int:
    """As many workers as there are CPUs for them: cpus // num_cpus, at least one."""
    cpus = available_cpus() if cpus is None else cpus
    return max(1, int(cpus // max(num_cpus, 1e-9)))


def threads_per_worker(num_cpus: float) -> int:
    return max(1, math.ceil(num_cpus))


def visible_gpus(environ: Mapping[str, str] | None = None, dev_dir: str = "/dev") -> list[str]:
    """The GPU ids this process may hand out, as CUDA_VISIBLE_DEVICES entries."""
    env = os.environ if environ is None else environ
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        devices = []
        for entry in (e.strip() for e in value.split(",")):
            if not entry or entry.startswith("-"):
                break  # CUDA ignores everything from the first invalid entry on
            devices.append(entry)
        return devices
    try:
        names = os.listdir(dev_dir)
    except OSError:
        return []
    return [str(i) for i in range(sum(1 for name in names if re.fullmatch(r"nvidia\d+", name)))]


def gpu_slots(num_gpus: float, devices: Sequence[str]) -> list[tuple[str, ...]]:
    """The devices of each worker slot; the list's length is the most workers the GPUs allow.

    A fraction f < 1 gives floor(1/f) slots per GPU, spread: slot i uses devices[i % n], so a
    pool smaller than the slot count uses every GPU before sharing one. A whole number k gives
    each slot k devices of its own. Pure: pass a fake device list to test it.
    """
    if num_gpus <= 0:
        raise PlanError(f"num_gpus must be positive here, got {num_gpus!r}.")
    devices = list(devices)
    if not devices:
        return []
    if num_gpus < 1:
        per_gpu = int(1 / num_gpus + 1e-9)
        return [(devices[i % len(devices)],) for i in range(per_gpu * len(devices))]
    if num_gpus != int(num_gpus):
        raise PlanError(f"num_gpus above 1 must be a whole number, got {num_gpus!r}.")
    k = int(num_gpus)
    return [tuple(devices[i * k:(i + 1) * k]) for i in range(len(devices) // k)]


def worker_env(base: Mapping[str, str], threads: int, devices: tuple[str, ...] | None) -> dict[str, str]:
    """A worker's environment: the parent's, with its thread counts and its GPUs (None: leave as is)."""
    env = dict(base)
    for name in THREAD_VARIABLES:
        env.setdefault(name, str(threads))
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    return env


class GpuPlan:
    """A pool's GPU assignment: the devices of each worker slot, and the cap they put on its size."""

    def __init__(self, num_gpus: float, what: str, devices: Sequence[str] | None = None):
        self.num_gpus, self.what = num_gpus, what
        self.slots: list[tuple[str, ...]] | None = None  # None: no GPU limit
        if num_gpus:
            self.slots = gpu_slots(num_gpus, visible_gpus() if devices is None else devices) or None
            if self.slots is None:
                log.warning("map_batches %s asks for num_gpus=%s but this machine shows no GPU; its workers run "
                            "with CUDA_VISIBLE_DEVICES='' (CPU only).", what, num_gpus)

    def cap(self, low: int, high: int) -> tuple[int, int]:
        if self.slots is not None and high > len(self.slots):
            log.warning("map_batches %s: num_gpus=%s allows %d workers on this machine's GPUs, not %d.",
                        self.what, self.num_gpus, len(self.slots), high)
            high = len(self.slots)
        return min(low, high), high

    def devices(self, slot: int) -> tuple[str, ...] | None:
        """CUDA_VISIBLE_DEVICES for a slot: its GPUs, () for none, None to leave the variable alone."""
        if not self.num_gpus:
            return None
        return self.slots[slot] if self.slots is not None else ()

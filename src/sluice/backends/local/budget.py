"""The memory budget: admission control for blocks in flight.

Every task reserves its estimated output size before it is submitted, and the reservation
is released when its block is handed downstream. A task is admitted only while the
reservations fit in the budget, except that each stage may always have one task in flight,
so a block bigger than the budget still makes progress instead of deadlocking. Only the
coordinating thread reserves and releases, so no lock is needed.

The budget bounds the whole process, not only its blocks: what the process already holds
when the run starts (the interpreter, libraries, the caller's data) is subtracted first, so
a budget of 4 GiB means the process stays near 4 GiB of real memory.
"""

from __future__ import annotations

import os
import threading

import psutil
import pyarrow as pa

from ...engine.backend import WORK_FACTOR

MIN_DATA_SHARE = 0.25  # however large the process already is, blocks get at least this share
ALLOCATOR_SLACK = 0.1  # of the budget, kept back for fragmentation and kernels' scratch the estimates miss
STRICT_ARROW_DECAY_MS = 5  # how soon Arrow's jemalloc returns freed pages in strict mode


class MemoryBudget:
    def __init__(self, limit_bytes: int, already_used: int | None = None):
        if already_used is None:
            already_used = psutil.Process().memory_info().rss
        self.total = limit_bytes
        self.limit = max(int(limit_bytes * MIN_DATA_SHARE), int(limit_bytes * (1 - ALLOCATOR_SLACK)) - already_used)
        self.reserved = 0
        self.peak = 0

    def try_reserve(self, nbytes: int, force: bool = False, share: float = 1.0) -> bool:
        """Reserve if the reservations would stay within `share` of the limit (or if forced)."""
        if not force and self.reserved + nbytes > self.limit * share:
            return False
        self.reserved += nbytes
        self.peak = max(self.peak, self.reserved)
        return True

    def release(self, nbytes: int) -> None:
        self.reserved -= nbytes

    def task_bytes(self, threads: int, ceiling: int, floor: int) -> int:
        """The largest read task that lets every thread run one within the budget."""
        return min(ceiling, max(floor, self.limit // (WORK_FACTOR * 2 * max(1, threads))))


_allocator_lock = threading.Lock()
_allocator_configured = False


def allocator_mode() -> str:
    mode = os.environ.get("SLUICE_ALLOCATOR", "fast").lower()
    return mode if mode in ("fast", "strict", "keep") else "fast"


def use_prompt_allocator() -> None:
    """Make Arrow hand freed memory back to the OS, so RSS follows what blocks hold.

    Arrow's allocators keep freed pages for reuse (mimalloc for a second by default); that is
    fast, but the process then sits hundreds of MiB above what the budget admitted. sluice
    picks Arrow's allocator and how soon it returns pages, and sets Polars' jemalloc alike
    (through MIMALLOC_PURGE_DELAY and _RJEM_MALLOC_CONF, in sluice/__init__.py):
    - SLUICE_ALLOCATOR=fast (default): Arrow on mimalloc, freed pages back after 10 ms; Polars'
      jemalloc after 100 ms. RSS can run over a tight budget for a moment.
    - SLUICE_ALLOCATOR=strict: Arrow on jemalloc returning freed pages after 5 ms, Polars'
      jemalloc at once. RSS stays within budget + 25% even while exchanges spill
      (tests/integration/test_spill.py). For runs whose budget is tight against the machine's
      memory. (Arrow returning pages at once, 0 ms, faults every buffer back in: a spilling
      join then spends twice the CPU, most of it in the kernel, for ~7% less peak RSS.)
    - SLUICE_ALLOCATOR=keep: leave Arrow's and Polars' allocators as they are.
    Importing sluice before pyarrow makes Arrow's C++ code use the chosen allocator too
    (through ARROW_DEFAULT_MEMORY_POOL); otherwise only allocations made from Python move.
    """
    global _allocator_configured
    with _allocator_lock:
        mode = allocator_mode()
        if _allocator_configured or mode == "keep":
            return
        _allocator_configured = True
        wanted = "jemalloc" if mode == "strict" else "mimalloc"
        try:
            if pa.default_memory_pool().backend_name != wanted:
                pa.set_memory_pool(pa.jemalloc_memory_pool() if wanted == "jemalloc" else pa.mimalloc_memory_pool())
            if wanted == "jemalloc":
                pa.jemalloc_set_decay_ms(STRICT_ARROW_DECAY_MS)
        except (NotImplementedError, pa.ArrowNotImplementedError):
            pass  # this pyarrow build lacks that allocator; keep its default

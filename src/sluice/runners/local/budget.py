"""The memory budget: admission control for blocks in flight.

Every task reserves its estimated output size before it is submitted, and the reservation
is released when its block is handed downstream. A task is admitted only while the
reservations fit in the budget, except that each stage may always have one task in flight,
so a block bigger than the budget still makes progress instead of deadlocking. Only the
coordinating thread reserves and releases, so no lock is needed.
"""

from __future__ import annotations


class MemoryBudget:
    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self.reserved = 0
        self.peak = 0

    def try_reserve(self, nbytes: int, force: bool = False) -> bool:
        if not force and self.reserved + nbytes > self.limit:
            return False
        self.reserved += nbytes
        self.peak = max(self.peak, self.reserved)
        return True

    def release(self, nbytes: int) -> None:
        self.reserved -= nbytes

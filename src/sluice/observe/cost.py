"""What a run cost, estimated from the machine it held and the bytes it moved.

A run holds `num_threads` cores and its memory budget for its wall time, and reads, shuffles
and writes bytes through storage. Each of those has a configurable price
(`price_core_hour`, `price_gb_hour`, `price_storage_gb`), so the estimate is

    cores x hours x price_core_hour + budget GB x hours x price_gb_hour
    + (input + shuffle write + shuffle read + output) GB x price_storage_gb

It is an estimate of what the same work would cost on rented machines, not a bill: the
prices are the user's to set. A GB here is 10^9 bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

GB = 1e9


@dataclass(frozen=True)
class CostBasis:
    """What a run holds and what each unit costs; recorded when the run starts."""

    cores: int
    memory_bytes: int
    price_core_hour: float
    price_gb_hour: float
    price_storage_gb: float

    @classmethod
    def from_config(cls, config) -> CostBasis:
        return cls(config.num_threads, config.memory_budget, config.price_core_hour, config.price_gb_hour,
                   config.price_storage_gb)


@dataclass(frozen=True)
class CostEstimate:
    basis: CostBasis
    wall_s: float
    storage_bytes: int
    compute: float  # cores x hours x price per core-hour
    memory: float  # budget GB x hours x price per GB-hour
    storage: float  # GB moved x price per GB

    @property
    def total(self) -> float:
        return self.compute + self.memory + self.storage

    def to_dict(self) -> dict:
        return {"total": self.total, "compute": self.compute, "memory": self.memory, "storage": self.storage,
                "wall_s": self.wall_s, "storage_bytes": self.storage_bytes, **asdict(self.basis)}

    def lines(self) -> list[str]:
        """The summary's cost lines: the total and its parts, then the quantities and prices behind them."""
        b = self.basis
        took = f"{self.wall_s:.1f} s" if self.wall_s < 3600 else f"{self.wall_s / 3600:.2f} h"
        total = (f"estimated cost: {money(self.total)} = compute {money(self.compute)} + memory "
                 f"{money(self.memory)} + storage {money(self.storage)}")
        basis = (f"  ({b.cores} cores and {b.memory_bytes / GB:.3g} GB of memory for {took} at "
                 f"{money(b.price_core_hour)}/core-hour and {money(b.price_gb_hour)}/GB-hour; "
                 f"{self.storage_bytes / GB:.3g} GB of storage I/O at {money(b.price_storage_gb)}/GB)")
        return [total, basis]


def estimate(basis: CostBasis, wall_s: float, storage_bytes: int) -> CostEstimate:
    hours = wall_s / 3600
    return CostEstimate(
        basis=basis, wall_s=wall_s, storage_bytes=storage_bytes,
        compute=basis.cores * hours * basis.price_core_hour,
        memory=basis.memory_bytes / GB * hours * basis.price_gb_hour,
        storage=storage_bytes / GB * basis.price_storage_gb,
    )


def money(amount: float) -> str:
    """USD with enough digits that a run costing a fraction of a cent does not read as $0.00."""
    if amount == 0:
        return "$0"
    if amount >= 1:
        return f"${amount:,.2f}"
    return f"${amount:.3g}"

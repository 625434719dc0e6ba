"""Exchange buffers: one exchange's blocks by partition, in memory up to a share of the
budget, spilled to compressed Arrow IPC files on local disk beyond it.

Only the coordinating thread adds, spills and releases; reduce tasks read from pool
threads, which only touch partitions no one is still adding to.
"""

from __future__ import annotations

import itertools
import os

import pyarrow as pa
import pyarrow.ipc as ipc

from ...observe.stats import RunStats
from .budget import MemoryBudget

EXCHANGE_SHARE = 0.6  # of the data budget that exchange buffers may hold before spilling
_spill_ids = itertools.count()


class ExchangeBuffer:
    def __init__(self, name: str, schema: pa.Schema, num_partitions: int, budget: MemoryBudget, spill_dir: str,
                 stats: RunStats):
        self.name = name
        self.schema = schema
        self.num_partitions = num_partitions
        self.budget = budget
        self.spill_dir = spill_dir
        self.stats = stats
        self.memory: list[list[pa.Table]] = [[] for _ in range(num_partitions)]
        self.memory_bytes = [0] * num_partitions
        self.files: list[list[str]] = [[] for _ in range(num_partitions)]
        self.bytes = [0] * num_partitions
        self.rows = [0] * num_partitions

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes)

    @property
    def total_rows(self) -> int:
        return sum(self.rows)

    def add(self, partition: int, block: pa.Table) -> None:
        size = block.nbytes
        self.bytes[partition] += size
        self.rows[partition] += block.num_rows
        self.stats.add_shuffle(written=size)
        while not self.budget.try_reserve(size, share=EXCHANGE_SHARE):
            if not self._spill_largest():
                self._write_spill(partition, [block])
                return
        self.memory[partition].append(block)
        self.memory_bytes[partition] += size

    def _spill_largest(self) -> bool:
        partition = max(range(self.num_partitions), key=lambda p: self.memory_bytes[p])
        if self.memory_bytes[partition] == 0:
            return False
        self._write_spill(partition, self.memory[partition])
        self.budget.release(self.memory_bytes[partition])
        self.memory[partition] = []
        self.memory_bytes[partition] = 0
        return True

    def _write_spill(self, partition: int, blocks: list[pa.Table]) -> None:
        path = os.path.join(self.spill_dir, f"{self.name}-p{partition}-{next(_spill_ids)}.arrow")
        options = ipc.IpcWriteOptions(compression="zstd")
        with ipc.new_file(path, self.schema, options=options) as writer:
            for block in blocks:
                writer.write_table(block.cast(self.schema) if not block.schema.equals(self.schema) else block)
        self.files[partition].append(path)
        self.stats.add_spill(sum(b.nbytes for b in blocks), os.path.getsize(path))

    def blocks(self, partition: int) -> list[pa.Table]:
        """Every block of a partition, in the order they were added within memory and within files."""
        tables = []
        for path in self.files[partition]:
            with ipc.open_file(pa.OSFile(path, "rb")) as reader:
                tables.append(reader.read_all())
        return tables + list(self.memory[partition])

    def read(self, partitions) -> pa.Table:
        tables = [t for p in partitions for t in self.blocks(p)]
        table = pa.concat_tables(tables, promote_options="permissive") if tables else self.schema.empty_table()
        self.stats.add_shuffle(read=table.nbytes)
        return table

    def release(self, partition: int) -> None:
        self.budget.release(self.memory_bytes[partition])
        self.memory[partition] = []
        self.memory_bytes[partition] = 0
        for path in self.files[partition]:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        self.files[partition] = []

    def close(self) -> None:
        for partition in range(self.num_partitions):
            self.release(partition)

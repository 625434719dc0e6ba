"""Exchange buffers: one exchange's blocks by partition, in memory up to a share of the
budget, spilled to compressed Arrow IPC files on local disk beyond it.

Only the coordinating thread adds, spills and releases; reduce tasks read from pool
threads, which only touch partitions no one is still adding to. A resumable run also keeps
each exchange on disk (exchange_checkpoint.py); a resumed run reads it back from there.
"""

from __future__ import annotations

import itertools
import os
from typing import Iterator

import pyarrow as pa
import pyarrow.ipc as ipc

from ...observe.stats import RunStats
from .budget import MemoryBudget

COMPACT_PIECES = 32  # merge a partition's in-memory pieces once it has this many
EXCHANGE_SHARE = 0.5  # of the data budget that exchange buffers may hold before spilling
# Spill and exchange-checkpoint files stay on local disk: LZ4 (Spark's shuffle codec too) writes
# a 43 MiB block in half zstd's CPU time, for files 1.4x zstd's size. (Ray's persisted exchanges
# may go to object storage, where bytes cost more: they keep zstd.)
LOCAL_FILE_COMPRESSION = "lz4"
_spill_ids = itertools.count()


class ExchangeBuffer:
    def __init__(self, name: str, schema: pa.Schema, num_partitions: int, budget: MemoryBudget, spill_dir: str,
                 stats: RunStats, durable: bool = False, stage_id: int | None = None):
        self.name = name
        self.schema = schema
        self.num_partitions = num_partitions
        self.budget = budget
        self.spill_dir = spill_dir
        self.stats = stats
        self.memory: list[list[pa.Table]] = [[] for _ in range(num_partitions)]
        self.memory_bytes = [0] * num_partitions
        self.spills: list[list[tuple[str, int, int]]] = [[] for _ in range(num_partitions)]  # (file, first, count)
        self.spill_files: list[str] = []
        self.bytes = [0] * num_partitions
        self.rows = [0] * num_partitions
        self.stored = [0] * num_partitions  # bytes on disk per partition, in a durable exchange
        self.stage_id = stage_id  # the stage reading this exchange, for per-stage spill figures
        self.durable = durable  # a persisted exchange: shuffle bytes are its files' bytes, counted at persist

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
        if not self.durable:
            self.stats.add_shuffle(written=size)
        pieces = self.memory[partition]
        pieces.append(block)
        if len(pieces) >= COMPACT_PIECES:
            # many small pieces cost more than their bytes (buffers, objects): keep one contiguous table
            self.memory[partition] = [pa.concat_tables(pieces, promote_options="permissive").combine_chunks()]
        self.memory_bytes[partition] += size
        if not self.budget.try_reserve(size, share=EXCHANGE_SHARE):
            self.budget.try_reserve(size, force=True)
            self._spill_all()

    def _spill_all(self) -> None:
        """Write every partition held in memory to one IPC file, grouped by partition, and free them."""
        path = os.path.join(self.spill_dir, f"{self.name}-{next(_spill_ids)}.arrow")
        written = 0
        with ipc.new_file(path, self.schema, options=ipc.IpcWriteOptions(compression=LOCAL_FILE_COMPRESSION)) as writer:
            for partition, blocks in enumerate(self.memory):
                first = written
                for block in blocks:
                    block = block if block.schema.equals(self.schema) else block.cast(self.schema)
                    for batch in block.to_batches():
                        writer.write_batch(batch)
                        written += 1
                if written > first:
                    self.spills[partition].append((path, first, written - first))
        self.spill_files.append(path)
        self.stats.add_spill(sum(self.memory_bytes), os.path.getsize(path), self.stage_id)
        self.budget.release(sum(self.memory_bytes))
        self.memory = [[] for _ in range(self.num_partitions)]
        self.memory_bytes = [0] * self.num_partitions

    def add_stored(self, partition: int, path: str, first: int, count: int, rows: int, nbytes: int,
                   stored: int) -> None:
        """Add batches first..first+count of an IPC file (an earlier attempt's map output) to a partition."""
        self.spills[partition].append((path, first, count))
        self.rows[partition] += rows
        self.bytes[partition] += nbytes
        self.stored[partition] += stored

    def iter_blocks(self, partition: int) -> Iterator[pa.Table]:
        """The partition's blocks in the order they were added, read back one record batch at a time."""
        for path, first, count in list(self.spills[partition]):
            with ipc.open_file(pa.OSFile(path, "rb")) as reader:
                for index in range(first, first + count):
                    yield pa.Table.from_batches([reader.get_batch(index)])
        yield from list(self.memory[partition])

    def read(self, partitions) -> pa.Table:
        tables = [t for p in partitions for t in self.iter_blocks(p)]
        table = pa.concat_tables(tables, promote_options="permissive") if tables else self.schema.empty_table()
        durable = any(self.stored)  # a persisted exchange counts what it stores: its files' bytes
        self.stats.add_shuffle(read=sum(self.stored[p] for p in partitions) if durable else table.nbytes)
        return table

    def release(self, partition: int) -> None:
        self.budget.release(self.memory_bytes[partition])
        self.memory[partition] = []
        self.memory_bytes[partition] = 0
        self.spills[partition] = []

    def close(self) -> None:
        for partition in range(self.num_partitions):
            self.release(partition)
        for path in self.spill_files:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        self.spill_files = []

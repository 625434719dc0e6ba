"""Exchange pieces on this machine: in memory up to a share of the budget, spilled to local disk beyond it.

Why this module exists: the local backend holds an exchange's map output itself (on Ray the
object store does). Pieces stay in memory while the exchanges of the run hold under half
the data budget; past that, every in-memory piece of the exchange is written to one
compressed Arrow IPC file, batches grouped by partition, and its memory is given back. A
reduce task gets *deferred reads* of its pieces (`Deferred`), which the task's thread loads,
so reading spilled data runs in parallel and the driver never waits on disk.

Only the driver adds, spills and releases; a released partition's pieces stay readable by
the tasks that were handed them (they hold the tables or the file ranges themselves).
"""

from __future__ import annotations

import itertools
import os

import pyarrow as pa
import pyarrow.ipc as ipc

from ...engine.backend import Exchange
from ...engine.checkpoint import LOCAL_FILE_COMPRESSION, read_ranges
from ...observe.stats import RunStats
from .budget import MemoryBudget

COMPACT_PIECES = 32  # merge a partition's in-memory pieces once it has this many
EXCHANGE_SHARE = 0.5  # of the data budget that exchange buffers may hold before spilling
_spill_ids = itertools.count()


class Deferred:
    """Data a task reads when it runs: batches of an IPC file, or ranges of a durable exchange's files."""

    __slots__ = ("read",)

    def __init__(self, read):
        self.read = read

    def load(self) -> pa.Table:
        return self.read()


def spill_range(path: str, first: int, count: int) -> Deferred:
    def read() -> pa.Table:
        with ipc.open_file(pa.OSFile(path, "rb")) as reader:
            return pa.Table.from_batches([reader.get_batch(i) for i in range(first, first + count)],
                                         schema=reader.schema)
    return Deferred(read)


class BufferedExchange(Exchange):
    def __init__(self, schema: pa.Schema, partitions: int, budget: MemoryBudget, spill_dir: str, stats: RunStats,
                 stage_id: int):
        super().__init__(schema, partitions)
        self.budget = budget
        self.spill_dir = spill_dir
        self.stats = stats
        self.stage_id = stage_id  # the stage reading this exchange, for per-stage spill figures
        self.memory: list[list[pa.Table]] = [[] for _ in range(partitions)]
        self.memory_bytes = [0] * partitions
        self.on_disk: list[list[tuple[Deferred, int, int]]] = [[] for _ in range(partitions)]
        self.spill_files: list[str] = []

    def keep(self, partition: int, handle: pa.Table, rows: int, size: int) -> None:
        pieces = self.memory[partition]
        pieces.append(handle)
        if len(pieces) >= COMPACT_PIECES:
            # many small pieces cost more than their bytes (buffers, objects): keep one contiguous table
            self.memory[partition] = [pa.concat_tables(pieces, promote_options="permissive").combine_chunks()]
        self.memory_bytes[partition] += size
        if not self.budget.try_reserve(size, share=EXCHANGE_SHARE):
            self.budget.try_reserve(size, force=True)
            self._spill_all()

    def _spill_all(self) -> None:
        """Write every partition held in memory to one IPC file, grouped by partition, and free them."""
        path = os.path.join(self.spill_dir, f"s{self.stage_id}-{next(_spill_ids)}.arrow")
        written = 0
        ranges: list[tuple[int, int, int, int, int]] = []
        with ipc.new_file(path, self.schema, options=ipc.IpcWriteOptions(compression=LOCAL_FILE_COMPRESSION)) as writer:
            for partition, blocks in enumerate(self.memory):
                first = written
                for block in blocks:
                    block = block if block.schema.equals(self.schema) else block.cast(self.schema)
                    for batch in block.to_batches():
                        writer.write_batch(batch)
                        written += 1
                if written > first:
                    ranges.append((partition, first, written - first, sum(b.num_rows for b in blocks),
                                   self.memory_bytes[partition]))
        for partition, first, count, rows, size in ranges:
            self.on_disk[partition].append((spill_range(path, first, count), rows, size))
        self.spill_files.append(path)
        self.stats.add_spill(sum(self.memory_bytes), os.path.getsize(path), self.stage_id)
        self.budget.release(sum(self.memory_bytes))
        self.memory = [[] for _ in range(self.partitions)]
        self.memory_bytes = [0] * self.partitions

    def pieces(self, partition: int) -> list[tuple[object, int, int]]:
        return list(self.on_disk[partition]) + [(t, t.num_rows, t.nbytes) for t in self.memory[partition]]

    def add_stored(self, partition: int, location, found, rows: int, size: int, stored: int) -> None:
        schema = self.schema
        self.on_disk[partition].append((Deferred(lambda: read_ranges(location, found, schema)), rows, size))
        self.rows[partition] += rows
        self.bytes[partition] += size
        self.stored[partition] += stored

    def release(self, partition: int) -> None:
        self.budget.release(self.memory_bytes[partition])
        self.memory[partition] = []
        self.memory_bytes[partition] = 0
        self.on_disk[partition] = []

    def close(self) -> None:
        for partition in range(self.partitions):
            self.release(partition)
        for path in self.spill_files:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        self.spill_files = []

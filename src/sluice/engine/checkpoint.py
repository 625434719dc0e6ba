"""Durable exchanges: a resumable run keeps each exchange's map output in its run store, task by task.

Why this module exists: a resumable (writing) run keeps every exchange durable, so that
`sluice resume` skips the work that finished before a crash (reliability/run_store.py). Each
map task writes its own pieces where it runs, to one Arrow IPC file with its batches grouped
by partition (`write_pieces`: LZ4 on local disk, Spark's shuffle codec, for half zstd's CPU
time; zstd in an object store, where bytes cost more), and reports the file's name and
layout. The driver, the only writer of the exchange's logs, appends each keyed map task (a
read task, named by what it read) to `map_tasks.jsonl` as its output arrives, and writes
`index.json` last, atomically, once the map side is complete.

A resumed attempt restores a complete exchange from `index.json` without running its
upstream; an incomplete one gets the logged tasks' output back and runs only the other map
tasks. How restored pieces are held is the backend's business (`Exchange.add_stored`): the
local backend reads the files' batches when a reduce task needs them, Ray loads them into
its object store. The layout is the same on every backend, so either can resume the other's
run store. The directory is a local path or a URI such as s3://bucket/runs/<run>/exchanges/<key>
(checkpoint_dir), reached through the run store's `Location` (pyarrow.fs).
"""

from __future__ import annotations

import json
import uuid

import pyarrow as pa
from pyarrow import ipc
from pyarrow.parquet import read_table, write_table

from ..crash_points import crash_point
from ..private_files import make_private, make_private_dir
from ..reliability.run_store import Location

INDEX_FILE = "index.json"
TASK_LOG = "map_tasks.jsonl"
SAMPLES_FILE = "samples.parquet"  # a persisted sort exchange keeps its key sample, to draw the same ranges
LOCAL_FILE_COMPRESSION = "lz4"
REMOTE_FILE_COMPRESSION = "zstd"


class DurableExchange:
    """One exchange's checkpoint in the run store: the task files, the task log and the index."""

    def __init__(self, directory: str, schema: pa.Schema, partitions: int):
        self.location = Location.of(directory)
        self.schema = schema
        self.partitions = partitions
        self.written = 0  # bytes this attempt wrote
        logged = self.location.json_lines(TASK_LOG)
        present = self.location.existing({e["file"] for e in logged if e.get("key") and e.get("file")})
        # every task output on disk: the logged ones (a task that had no rows has no file), then this attempt's
        self.entries = [e for e in logged if e.get("key") and (e.get("file") is None or e["file"] in present)]
        self.completed = {e["key"] for e in self.entries}  # keys of map tasks whose output is on disk
        if self.location.local:  # an object store has no directories
            make_private_dir(self.location.root)

    # ------------------------------------------------------------ restoring

    def restore_complete(self, exchange, samples: bool) -> bool:
        """Fill `exchange` when an earlier attempt finished its map side; else False, untouched."""
        try:
            index = json.loads(self.location.read_text(INDEX_FILE) or "")
            pieces = {int(p): [(name, first, count) for name, first, count in found]
                      for p, found in index["pieces"].items()}
        except (KeyError, TypeError, ValueError):
            return False  # absent, cut short, or another layout: run the map side again
        names = {name for found in pieces.values() for name, _, _ in found}
        if index["partitions"] != self.partitions or (samples and not self.location.existing([SAMPLES_FILE])) \
                or not names <= self.location.existing(names):
            return False
        self._load(exchange, pieces, index["rows"], index["bytes"], index["stored"])
        if samples:
            with self.location.fs.open_input_file(self.location.path(SAMPLES_FILE)) as f:
                exchange.samples.append(read_table(f))
        return True

    def restore_into(self, exchange, stats=None) -> None:
        """Add the output of the map tasks an earlier attempt logged to `exchange` (and their statistics to
        `stats`)."""
        if stats is not None:
            self.count_restored(stats)
        pieces: dict[int, list] = {}
        rows, size, stored = [0] * self.partitions, [0] * self.partitions, [0] * self.partitions
        for entry in self.entries:
            for partition, first, count, part_rows, part_bytes, part_stored in entry["parts"]:
                pieces.setdefault(partition, []).append((entry["file"], first, count))
                rows[partition] += part_rows
                size[partition] += part_bytes
                stored[partition] += part_stored
        self._load(exchange, pieces, rows, size, stored)

    def _load(self, exchange, pieces: dict[int, list], rows, size, stored) -> None:
        exchange.durable = True
        for partition, found in sorted(pieces.items()):
            exchange.add_stored(partition, self.location, found, rows[partition], size[partition], stored[partition])

    # ------------------------------------------------------------ saving

    def count_restored(self, stats) -> None:
        """Count the logged map tasks' operator statistics as this attempt's (rows for the run's totals and
        its error budget), for the tasks a resumed attempt does not run again."""
        for entry in self.entries:
            for op in entry.get("ops", []):
                stats.record(*op)

    def record(self, key: str | None, saved: tuple[str | None, list] | None, exchange, ops: list = ()) -> None:
        """A map task's output is on disk (`saved`: its file and layout, from the task's report): log it
        (with its operator statistics, `ops`) when the task has a key, so a resumed attempt skips it; count
        its bytes as stored."""
        name, parts = saved if saved is not None else (None, [])
        if key is None and name is None:
            return
        entry = {"key": key, "file": name, "parts": parts, "ops": [list(op) for op in ops]}
        self.entries.append(entry)
        for part in parts:
            exchange.stored[part[0]] += part[5]
            self.written += part[5]
        if key is not None:
            self.location.append_line(TASK_LOG, json.dumps(entry) + "\n")
        crash_point("mid-exchange")

    def finish(self, exchange) -> None:
        """Mark the exchange complete: `index.json` lists every partition's pieces on disk."""
        if exchange.samples:
            with self.location.fs.open_output_stream(self.location.path(SAMPLES_FILE)) as f:
                write_table(pa.concat_tables(exchange.samples, promote_options="permissive"), f)
            if self.location.local:
                make_private(self.location.path(SAMPLES_FILE))
        pieces: dict[str, list] = {}
        for entry in self.entries:
            for partition, first, count, *_ in entry["parts"]:
                pieces.setdefault(str(partition), []).append([entry["file"], first, count])
        index = {"partitions": self.partitions, "rows": exchange.rows, "bytes": exchange.bytes,
                 "stored": exchange.stored, "pieces": pieces}
        self.location.write(INDEX_FILE, json.dumps(index).encode())
        exchange.durable = True


# ---------------------------------------------------------------- in tasks

def write_pieces(location: Location, schema: pa.Schema, outputs: list) -> tuple[str | None, list]:
    """A map task's pieces (one table or None per partition) in one file; its name and, per piece,
    [partition, first batch, batches, rows, bytes, bytes on disk]."""
    pieces = [(p, t) for p, t in enumerate(outputs) if t is not None and t.num_rows]
    if not pieces:
        return None, []
    name = f"t-{uuid.uuid4().hex[:16]}.arrow"
    codec = LOCAL_FILE_COMPRESSION if location.local else REMOTE_FILE_COMPRESSION
    parts, first = [], 0
    with location.fs.open_output_stream(location.path(name)) as sink:
        with ipc.new_file(sink, schema, options=ipc.IpcWriteOptions(compression=codec)) as writer:
            for partition, piece in pieces:
                batches = (piece if piece.schema.equals(schema) else piece.cast(schema)).to_batches()
                for batch in batches:
                    writer.write_batch(batch)
                parts.append([partition, first, len(batches), piece.num_rows, piece.nbytes])
                first += len(batches)
        size = sink.tell()
    if location.local:
        make_private(location.path(name))
    share_out(parts, size)
    return name, parts


def share_out(parts: list[list], size: int) -> None:
    """Give each partition of a file its share of the file's bytes (by Arrow size), summing exactly."""
    total = sum(part[4] for part in parts) or 1
    given = 0
    for part in parts[:-1]:
        share = size * part[4] // total
        part.append(share)
        given += share
    parts[-1].append(size - given)


def read_ranges(location: Location, found: list[tuple[str, int, int]], schema: pa.Schema) -> pa.Table:
    """A persisted partition: (file, first batch, batches) ranges of the exchange's files, concatenated."""
    batches = []
    for name, first, count in found:
        with location.fs.open_input_file(location.path(name)) as f:
            reader = ipc.open_file(f)
            batches += [reader.get_batch(index) for index in range(first, first + count)]
    return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()

"""Durable exchanges on Ray: each map task's output kept in the run store, task by task.

Why this module exists: a resumable (writing) run keeps every exchange durable, so that
`sluice resume` skips the work that finished before a crash (reliability/run_store.py). On
Ray the map output is in worker processes, so each map task writes its own pieces where it
runs, to one zstd Arrow IPC file with its batches grouped by partition (`write_pieces`), and
reports the file's name and layout. The driver, the only writer of the exchange's logs,
appends each keyed map task (a read task, named by what it read) to `map_tasks.jsonl` as its
output arrives, and writes `index.json` last, atomically, once the map side is complete.

A resumed attempt restores a complete exchange from `index.json` without running its
upstream; an incomplete one gets the logged tasks' output back and runs only the other map
tasks. Restored partitions are loaded into the object store by tasks. The layout (file names
aside) is the local runner's (runners/local/exchange_checkpoint.py), so either runner can
resume the other's local run store.

The exchange directory is a local path (shared storage on a multi-node cluster) or a URI
such as s3://bucket/runs/<run>/exchanges/<key> (checkpoint_dir), reached through the run
store's `Location` (pyarrow.fs) by the driver and the tasks alike.
"""

from __future__ import annotations

import json
import uuid

import pyarrow as pa
from pyarrow import ipc
from pyarrow.parquet import read_table, write_table

from ...reliability.crash_points import crash_point
from ...reliability.run_store import Location
from ..local.exchange_checkpoint import INDEX_FILE, TASK_LOG, _share_out
from ..local.shuffle import SAMPLES_FILE
from .tasks import remote


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
            self.location.fs.create_dir(self.location.root, recursive=True)

    # ------------------------------------------------------------ restoring

    def restore_complete(self, ray, samples: bool):
        """The whole exchange, when an earlier attempt finished its map side; else None."""
        from .exchange import Exchange
        try:
            index = json.loads(self.location.read_text(INDEX_FILE) or "")
            pieces = {int(p): [(name, first, count) for name, first, count in found]
                      for p, found in index["pieces"].items()}
        except (KeyError, TypeError, ValueError):
            return None  # absent, cut short, or another layout: run the map side again
        names = {name for found in pieces.values() for name, _, _ in found}
        if index["partitions"] != self.partitions or (samples and not self.location.existing([SAMPLES_FILE])) \
                or not names <= self.location.existing(names):
            return None
        exchange = Exchange(self.schema, self.partitions)
        self._load(ray, exchange, pieces, index["rows"], index["bytes"], index["stored"])
        if samples:
            with self.location.fs.open_input_file(self.location.path(SAMPLES_FILE)) as f:
                exchange.samples.append(read_table(f))
        return exchange

    def restore_into(self, ray, exchange) -> None:
        """Add the output of the map tasks an earlier attempt logged to `exchange`."""
        pieces: dict[int, list] = {}
        rows, size, stored = [0] * self.partitions, [0] * self.partitions, [0] * self.partitions
        for entry in self.entries:
            for partition, first, count, part_rows, part_bytes, part_stored in entry["parts"]:
                pieces.setdefault(partition, []).append((entry["file"], first, count))
                rows[partition] += part_rows
                size[partition] += part_bytes
                stored[partition] += part_stored
        self._load(ray, exchange, pieces, rows, size, stored)

    def _load(self, ray, exchange, pieces: dict[int, list], rows, size, stored) -> None:
        """One task per partition loads its ranges of the files into the object store."""
        exchange.durable = True
        for partition, found in sorted(pieces.items()):
            ref = remote("load_partition").remote(self.location, found, self.schema)
            exchange.pieces[partition].append((ref, rows[partition], size[partition]))
            exchange.rows[partition] += rows[partition]
            exchange.bytes[partition] += size[partition]
            exchange.stored[partition] += stored[partition]

    # ------------------------------------------------------------ saving

    def record(self, key: str | None, saved: tuple[str | None, list] | None, exchange) -> None:
        """A map task's output is on disk (`saved`: its file and layout, from the task's report): log it
        when the task has a key, so a resumed attempt skips it; count its bytes as stored."""
        name, parts = saved if saved is not None else (None, [])
        if key is None and name is None:
            return
        entry = {"key": key, "file": name, "parts": parts}
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
    parts, first = [], 0
    with location.fs.open_output_stream(location.path(name)) as sink:
        with ipc.new_file(sink, schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
            for partition, piece in pieces:
                batches = (piece if piece.schema.equals(schema) else piece.cast(schema)).to_batches()
                for batch in batches:
                    writer.write_batch(batch)
                parts.append([partition, first, len(batches), piece.num_rows, piece.nbytes])
                first += len(batches)
        size = sink.tell()
    _share_out(parts, size)
    return name, parts


def load_partition(location: Location, found: list[tuple[str, int, int]], schema: pa.Schema) -> pa.Table:
    """A persisted partition: (file, first batch, batches) ranges of the exchange's files, concatenated."""
    batches = []
    for name, first, count in found:
        with location.fs.open_input_file(location.path(name)) as f:
            reader = ipc.open_file(f)
            batches += [reader.get_batch(index) for index in range(first, first + count)]
    return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()

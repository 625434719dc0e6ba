"""Durable exchanges: a resumable run keeps each exchange's map output on disk, task by task.

A map task over a read task (its key names the files and row groups it read) writes its
partitioned output to one LZ4 Arrow IPC file, batches grouped by partition, and logs it in
`map_tasks.jsonl` as soon as it finishes. A run killed in the middle of a long map side
therefore loses only the tasks that were running: a resumed attempt restores the logged
tasks' output from their files and runs only the others. Map output that has no task key
(blocks streamed from another exchange's reduce side) is written in one file when the map
side finishes. `index.json`, written last and atomically, marks the exchange complete; a
resumed attempt then reads the whole exchange from disk without running its upstream.

The files are what the shuffle reads in a resumed attempt, and what the shuffle bytes of a
resumable run count: the bytes written to them, and each partition's share of them as read.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Iterable

import pyarrow as pa
import pyarrow.ipc as ipc

from ...observe.events import read_json_lines
from ...reliability.crash_points import crash_point
from .buffer import LOCAL_FILE_COMPRESSION, ExchangeBuffer

INDEX_FILE = "index.json"
TASK_LOG = "map_tasks.jsonl"


class ExchangeCheckpoint:
    def __init__(self, directory: str, schema: pa.Schema, num_partitions: int):
        self.directory = directory
        self.schema = schema
        self.num_partitions = num_partitions
        self.attempt = uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self._files = 0
        self.entries: list[dict] = []  # every task output on disk: restored ones, then this attempt's
        self.written = 0  # bytes this attempt wrote
        self.completed: set[str] = set()  # keys of map tasks whose output is on disk
        self.keyed = False  # set when the upstream's tasks have keys (and save their output themselves)
        for entry in self._logged():
            self.entries.append(entry)
            self.completed.add(entry["key"])

    def _logged(self) -> Iterable[dict]:
        return [entry for entry in read_json_lines(os.path.join(self.directory, TASK_LOG))
                if entry.get("key") and (entry["file"] is None  # a map task that had no rows
                                         or os.path.isfile(os.path.join(self.directory, entry["file"])))]

    # ------------------------------------------------------------ writing

    def save(self, key: str | None, pieces: list[tuple[int, pa.Table]]) -> dict | None:
        """Write one map task's pieces (or, with key None, the unkeyed rest) to one file; log it."""
        if not pieces:
            entry = {"key": key, "file": None, "parts": []}
        else:
            with self._lock:
                number = self._files
                self._files += 1
            name = f"t{number:06d}-{self.attempt}.arrow"
            path = os.path.join(self.directory, name)
            os.makedirs(self.directory, exist_ok=True)
            parts, first = [], 0
            with ipc.new_file(path, self.schema, options=ipc.IpcWriteOptions(compression=LOCAL_FILE_COMPRESSION)) as writer:
                for partition, piece in sorted(pieces, key=lambda p: p[0]):
                    piece = piece if piece.schema.equals(self.schema) else piece.cast(self.schema)
                    batches = piece.to_batches()
                    for batch in batches:
                        writer.write_batch(batch)
                    parts.append([partition, first, len(batches), piece.num_rows, piece.nbytes])
                    first += len(batches)
            size = os.path.getsize(path)
            _share_out(parts, size)
            entry = {"key": key, "file": name, "parts": parts}
        with self._lock:
            self.entries.append(entry)
            self.written += sum(part[5] for part in entry["parts"])
            if key is not None:
                with open(os.path.join(self.directory, TASK_LOG), "a") as f:
                    f.write(json.dumps(entry) + "\n")
        crash_point("mid-exchange")
        return entry

    def save_all(self, buffer: ExchangeBuffer) -> None:
        """Write everything the buffer holds: map output that had no task key, at the end of the map side."""
        self.save(None, [(p, _concat(list(buffer.iter_blocks(p)), self.schema))
                         for p in range(buffer.num_partitions) if buffer.rows[p]])

    def finish(self, buffer: ExchangeBuffer) -> None:
        """Mark the exchange complete: `index.json` lists every partition's pieces on disk."""
        buffer.stored = self.stored_per_partition()
        index = {"partitions": self.num_partitions, "rows": buffer.rows, "bytes": buffer.bytes,
                 "stored": buffer.stored, "pieces": self._pieces()}
        _write_json(os.path.join(self.directory, INDEX_FILE), index)

    def stored_per_partition(self) -> list[int]:
        stored = [0] * self.num_partitions
        for entry in self.entries:
            for part in entry["parts"]:
                stored[part[0]] += part[5]
        return stored

    def _pieces(self) -> dict[str, list[list]]:
        pieces: dict[str, list[list]] = {}
        for entry in self.entries:
            for partition, first, count, *_ in entry["parts"]:
                pieces.setdefault(str(partition), []).append([entry["file"], first, count])
        return pieces

    # ------------------------------------------------------------ reading

    def restore_into(self, buffer: ExchangeBuffer) -> list[int]:
        """Add the logged tasks' output (from an earlier attempt) to `buffer`, read from disk; rows per partition."""
        rows = [0] * self.num_partitions
        for entry in self.entries:
            for partition, first, count, part_rows, part_bytes, stored in entry["parts"]:
                buffer.add_stored(partition, os.path.join(self.directory, entry["file"]), first, count, part_rows,
                                  part_bytes, stored)
                rows[partition] += part_rows
        return rows

    @staticmethod
    def load_complete(directory: str, buffer: ExchangeBuffer) -> bool:
        """Fill `buffer` from a complete exchange on disk; False if the exchange is not complete."""
        try:
            with open(os.path.join(directory, INDEX_FILE)) as f:
                index = json.load(f)
        except (OSError, ValueError):
            return False
        if index["partitions"] != buffer.num_partitions:
            return False
        for partition, pieces in index["pieces"].items():
            for name, _, _ in pieces:
                if not os.path.isfile(os.path.join(directory, name)):
                    return False
        for partition, pieces in index["pieces"].items():
            for name, first, count in pieces:
                buffer.spills[int(partition)].append((os.path.join(directory, name), first, count))
        buffer.rows, buffer.bytes, buffer.stored = index["rows"], index["bytes"], index["stored"]
        return True


def _share_out(parts: list[list], size: int) -> None:
    """Give each partition of a file its share of the file's bytes (by Arrow size), summing exactly."""
    total = sum(part[4] for part in parts) or 1
    given = 0
    for part in parts[:-1]:
        share = size * part[4] // total
        part.append(share)
        given += share
    parts[-1].append(size - given)


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables, promote_options="permissive") if tables else schema.empty_table()


def _write_json(path: str, document: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(document, f)
    os.replace(path + ".tmp", path)

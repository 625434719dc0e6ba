"""A finished exchange map side, persisted for resume and restored by a resumed run, on Ray.

Why this module exists: a resumable (writing) run keeps every finished exchange durable, so
`sluice resume` skips the work upstream of it (reliability/run_store.py). On Ray, tasks write
each partition's pieces where they are, one zstd Arrow IPC file per non-empty partition under
the run directory (which must be shared storage on a multi-node cluster), and the driver
writes `index.json` last, atomically, as the completion mark. index.json has the local
runner's fields (runners/local/exchange_checkpoint.py: partitions, rows, bytes, stored, and
pieces as [file, first batch, batches] per partition), so either runner can restore it. A
restored partition is loaded back into the object store by a task when the run starts. A run
killed in the middle of a map side re-runs that whole map side (the local runner keeps each
finished map task).
"""

from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa
from pyarrow.parquet import read_table, write_table

from .tasks import remote

INDEX_FILE = "index.json"  # the names the local runner uses (exchange_checkpoint.py, shuffle.py)
SAMPLES_FILE = "samples.parquet"


def save(run, exchange, directory: str) -> int:
    """Write the exchange's partitions under `directory`; return the bytes written."""
    shutil.rmtree(directory, ignore_errors=True)  # a map side a crash cut short
    os.makedirs(directory, exist_ok=True)
    if exchange.samples:
        write_table(pa.concat_tables(exchange.samples, promote_options="permissive"),
                    os.path.join(directory, SAMPLES_FILE))
    calls = {}
    for partition in range(exchange.partitions):
        if exchange.rows[partition]:
            name = f"p{partition:05d}.arrow"
            calls[partition] = (name, remote("persist_partition").remote(
                os.path.join(directory, name), exchange.schema, *exchange.refs([partition])))
    pieces = {}
    for partition, (name, ref) in calls.items():
        size, batches = run.fetch(ref)
        pieces[str(partition)] = [[name, 0, batches]]
        exchange.stored[partition] = size
    index = {"partitions": exchange.partitions, "rows": exchange.rows, "bytes": exchange.bytes,
             "stored": exchange.stored, "pieces": pieces}
    with open(os.path.join(directory, INDEX_FILE + ".tmp"), "w") as f:
        json.dump(index, f)
    os.replace(os.path.join(directory, INDEX_FILE + ".tmp"), os.path.join(directory, INDEX_FILE))
    exchange.durable = True
    return sum(exchange.stored)


def restore(ray, directory: str, schema: pa.Schema, samples: bool):
    """The exchange an earlier attempt at this run persisted under `directory`, or None."""
    from .exchange import Exchange
    try:
        with open(os.path.join(directory, INDEX_FILE)) as f:
            index = json.load(f)
    except (OSError, ValueError):
        return None
    sample_path = os.path.join(directory, SAMPLES_FILE)
    if samples and not os.path.isfile(sample_path):
        return None
    try:
        files = {int(p): [(os.path.join(directory, name), first, count) for name, first, count in found]
                 for p, found in index["pieces"].items()}
    except (KeyError, TypeError, ValueError):
        return None  # another layout: run the map side again
    if not all(os.path.isfile(path) for found in files.values() for path, _, _ in found):
        return None
    exchange = Exchange(schema, index["partitions"])
    exchange.stored, exchange.durable = index["stored"], True
    for partition, found in sorted(files.items()):
        rows, size = index["rows"][partition], index["bytes"][partition]
        exchange.pieces[partition].append((remote("load_partition").remote(found, schema), rows, size))
        exchange.rows[partition], exchange.bytes[partition] = rows, size
    if samples:
        exchange.samples.append(read_table(sample_path))
    return exchange

"""events.jsonl: a failure is traced to its block and source rows from its timestamp alone.

Every task's start and end are logged with its block id, the files and row ranges it read, the
worker's pid and host and the attempt. A UDF fails at a moment it records; the test then reads
only the event log to find which task was running and failed at that moment, and which source
rows it covered, and checks that the failing row lies in them.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col
from sluice import config as sl_config
from sluice.observe.events import read_events

# what these tests check happens in exchanges: plan them even for small inputs (no fusion)
pytestmark = pytest.mark.usefixtures("staged")

ROWS_PER_FILE = 400_000
ROW_GROUP = 50_000


@pytest.fixture
def lake(tmp_path):
    for i in range(3):
        first = i * ROWS_PER_FILE
        pq.write_table(pa.table({"id": np.arange(first, first + ROWS_PER_FILE),
                                 "v": np.random.default_rng(i).random(ROWS_PER_FILE)}),
                       tmp_path / f"part-{i}.parquet", row_group_size=ROW_GROUP)
    return tmp_path


def _events(stats) -> list[dict]:
    return read_events(os.path.join(sl_config.current().runs_dir, stats.run_id, "events.jsonl"))


@pytest.mark.parametrize("target", [123_456, 1_000_001])
def test_failure_timestamp_leads_to_its_block_and_source_rows(lake, tmp_path, runner, target):
    sl.configure(on_error="raise", memory_budget="48MiB")  # small tasks: row groups, not whole files
    failed_at = tmp_path / "failed_at"

    def score(batch: pa.Table) -> pa.Table:
        if pa.compute.any(pa.compute.equal(batch["id"], target)).as_py():
            failed_at.write_text(repr(time.time()))
            raise ValueError(f"cannot score row {target}")
        return batch

    ds = sl.read_parquet(str(lake)).map_batches(score, compute="threads").with_columns(w=col("v") * 2)
    with pytest.raises(Exception, match=f"cannot score row {target}"):
        ds.to_arrow()
    moment = float(failed_at.read_text())

    events = _events(ds.stats())
    starts = {e["block"]: e for e in events if e["event"] == "task_start"}
    ends = {e["block"]: e for e in events if e["event"] == "task_end"}
    running = [block for block, start in starts.items()
               if start["ts"] <= moment <= ends.get(block, {"ts": float("inf")})["ts"]]
    culprits = [block for block in running if ends.get(block, {}).get("status") == "failed"]
    assert len(culprits) == 1, (running, culprits)
    start = starts[culprits[0]]
    assert start["pid"] == os.getpid() or runner != "local"
    assert start["attempt"] == 1 and start["host"]
    assert "ValueError" in ends[culprits[0]]["error"]

    file_index, row_in_file = divmod(target, ROWS_PER_FILE)
    path = str(lake / f"part-{file_index}.parquet")
    (source,) = [s for s in start["sources"] if s["file"] == path]
    assert source["first_row"] is not None  # the task read some row groups of the file
    assert source["first_row"] <= row_in_file < source["end_row"]
    assert source["end_row"] - source["first_row"] < ROWS_PER_FILE


def test_event_log_covers_every_task_and_samples_memory(lake, runner):
    ds = sl.read_parquet(str(lake)).group_by(col("id") % 7).agg(n=sl.count())
    ds.to_arrow()
    events = _events(ds.stats())
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    starts = [e for e in events if e["event"] == "task_start"]
    ends = {e["block"]: e for e in events if e["event"] == "task_end"}
    assert starts and all(ends[s["block"]]["status"] == "ok" for s in starts)
    scanned = sorted({s["file"] for e in starts for s in e.get("sources", [])})
    assert scanned == sorted(str(p) for p in lake.glob("*.parquet"))
    # a map task's output is what it hands the exchange: its partial aggregates
    partial = [op for op in ds.stats().operator_list() if op.name == "PartialAggregate"][0]
    assert sum(ends[s["block"]]["rows"] for s in starts if s["stage"] == 0) == partial.rows_out > 0
    samples = [e for e in events if e["event"] == "sample"]
    assert samples and all(s["rss_bytes"] > 0 and s["budget_bytes"] > 0 for s in samples)
    exchanges = [e for e in events if e["event"] == "exchange"]
    assert exchanges and sum(exchanges[0]["rows"]) > 0
    json.dumps(events)  # plain JSON all the way

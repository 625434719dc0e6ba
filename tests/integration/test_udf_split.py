"""map_batches in worker processes: blocks are split across workers only when the UDF has no
batch_size (then its batches are the engine's to choose); with batch_size they stay exact.

The slice size is forced small (workers.TASK_BYTES) so that a tiny block splits; the UDF
reports the size of each batch it saw.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import sluice as sl
from sluice.backends.local import workers

ROWS = 1000


def _sizes(batch: dict) -> dict:
    return {"x": batch["x"], "y": [v * 3 for v in batch["x"].tolist()], "seen": [len(batch["x"])] * len(batch["x"])}


def test_map_batches_splits_blocks_only_without_batch_size(monkeypatch):
    monkeypatch.setattr(workers, "TASK_BYTES", 1000)  # 8000-byte blocks -> 8 slices of 125 rows
    ds = sl.from_arrow(pa.table({"x": np.arange(ROWS, dtype=np.int64)}))
    split = ds.map_batches(_sizes, batch_format="numpy", concurrency=2).to_arrow()
    assert split["y"].to_pylist() == [3 * v for v in range(ROWS)] and max(split["seen"].to_pylist()) == 125
    exact = ds.map_batches(_sizes, batch_format="numpy", concurrency=2, batch_size=400).to_arrow()
    assert exact["seen"].to_pylist() == [400] * 800 + [200] * 200


def test_a_pool_of_n_workers_gets_n_parts_of_an_input_of_one_small_file(tmp_path):
    """A small input (one file, one block) is cut into a part per worker of the pool, on the plain and on
    the fused path (a join and a group_by before the UDF, run as one Polars query). Each call tags its rows
    with a number of its own, so the test counts the calls, not which process happened to take them."""
    import uuid

    import pyarrow.parquet as pq
    path = tmp_path / "one.parquet"
    pq.write_table(pa.table({"x": np.arange(ROWS, dtype=np.int64), "k": np.arange(ROWS) % 10}), path)

    def tag_call(batch):
        return batch.append_column("call", pa.array([uuid.uuid4().hex] * batch.num_rows))

    plain = sl.read_parquet(str(path)).map_batches(tag_call, concurrency=2)
    assert len(set(plain.to_arrow()["call"].to_pylist())) >= 2
    dims = sl.from_arrow(pa.table({"k": np.arange(10), "name": [f"n{i}" for i in range(10)]}))
    fused = sl.read_parquet(str(path)).join(dims, on="k").group_by("x", "name").agg(n=sl.count()).map_batches(
        tag_call, concurrency=2)
    assert "Fused" in fused.physical_plan().explain()
    assert len(set(fused.to_arrow()["call"].to_pylist())) >= 2

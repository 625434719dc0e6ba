"""WorkerPool.run with split_blocks: a block runs as slices on every worker, results in order.

The slice size is forced small (TASK_BYTES, or a known cost per row) so that tiny blocks
split; the UDFs report the size of the batch they saw, so splitting is checked by outcome,
never by timing.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sluice.errors import UdfTaskError
from sluice.backends.local import workers
from sluice.backends.local.workers import WorkerPool

ROWS = 1000


def _block() -> pa.Table:
    return pa.table({"x": np.arange(ROWS, dtype=np.int64)})  # 8000 bytes


def _sizes(batch: dict) -> dict:
    return {"x": batch["x"], "y": [v * 3 for v in batch["x"].tolist()], "seen": [len(batch["x"])] * len(batch["x"])}


@pytest.fixture
def slices_of_125(monkeypatch):
    monkeypatch.setattr(workers, "TASK_BYTES", 1000)  # 8000-byte blocks -> 8 slices of 125 rows


def test_a_split_block_gives_the_plain_loop_result_in_order(slices_of_125):
    with WorkerPool(_sizes, batch_format="numpy", concurrency=2, split_blocks=True) as pool:
        result = pool.run(_block())
    assert result.table["x"].to_pylist() == list(range(ROWS))
    assert result.table["y"].to_pylist() == [3 * v for v in range(ROWS)]
    assert set(result.table["seen"].to_pylist()) == {125}
    assert result.rows_in == result.rows_out == ROWS and result.input_bytes > 0 and result.compute_s > 0


def test_no_split_unless_asked_or_with_one_worker(slices_of_125):
    for kwargs in ({"concurrency": 2}, {"concurrency": 1, "split_blocks": True}):
        with WorkerPool(_sizes, batch_format="numpy", **kwargs) as pool:
            assert set(pool.run(_block()).table["seen"].to_pylist()) == {ROWS}


def test_slices_follow_the_learned_cost_of_a_row():
    with WorkerPool(_sizes, batch_format="numpy", concurrency=2, split_blocks=True) as pool:
        # 8 KB, under a task's size: one slice for each of the two idle workers
        assert set(pool.run(_block()).table["seen"].to_pylist()) == {ROWS // 2}
        pool._row_seconds = workers.TASK_SECONDS / 100  # as if a row took 1 ms: 100 rows a task
        assert set(pool.run(_block()).table["seen"].to_pylist()) == {100}


def test_an_error_in_a_slice_names_the_rows_of_the_block(slices_of_125):
    def picky(batch):
        if 700 in batch["x"]:
            raise KeyError("unlucky row")
        return batch

    with WorkerPool(picky, batch_format="numpy", concurrency=2, split_blocks=True) as pool:
        with pytest.raises(UdfTaskError) as info:
            pool.run(_block())
        assert "rows 625 to 749 of a block of 1000 rows" in str(info.value)
        assert pool.run(_block().slice(0, 600)).table.num_rows == 600  # the pool goes on


def test_slices_that_come_back_empty_do_not_break_the_block(slices_of_125):
    def keep_last(batch):  # an empty list comes back as float64; the other slices are int64
        return {"x": [v for v in batch["x"].tolist() if v >= 990]}

    with WorkerPool(keep_last, batch_format="numpy", concurrency=2, split_blocks=True) as pool:
        table = pool.run(_block()).table
    assert table["x"].to_pylist() == list(range(990, ROWS)) and table.schema.field("x").type == pa.int64()


# ---------------------------------------------------------------- input files written over


def test_an_input_file_is_written_over_only_when_nothing_points_into_it(tmp_path):
    from sluice.backends.local.shm import Mapping, overwrite_table, write_table
    path = str(tmp_path / "block.arrow")
    write_table(pa.table({"x": np.arange(1000, dtype=np.int64)}), path)
    mapping = Mapping(path)
    table = mapping.read()
    view = table["x"].to_numpy()  # zero-copy into the mapping
    del table
    assert not mapping.release() and view[999] == 999  # still mapped: the view keeps it
    del view
    assert mapping.release()
    overwrite_table(pa.table({"x": np.arange(10, dtype=np.int64) * 7}), path)
    again = Mapping(path)
    assert again.read()["x"].to_pylist() == [7 * i for i in range(10)]  # the old tail was cut off
    assert again.release()


class _Hoarder:
    """Keeps every batch it was given: their files must never be written over."""

    def __init__(self):
        self.kept = []

    def __call__(self, batch):
        self.kept.append(batch)
        return {"firsts": [[int(b["x"][0]) for b in self.kept]] * len(batch["x"])}


def test_a_udf_that_keeps_its_batches_keeps_them_intact():
    blocks = [pa.table({"x": np.arange(i * 100, i * 100 + 100, dtype=np.int64)}) for i in range(6)]
    with WorkerPool(_Hoarder, batch_format="numpy", concurrency=1, max_tasks_in_flight=1) as pool:
        results = [pool.run(block) for block in blocks]
        assert pool._spare_inputs == []
    assert results[-1].table["firsts"][0].as_py() == [0, 100, 200, 300, 400, 500]


def test_input_files_are_written_over_when_released():
    blocks = [pa.table({"x": np.arange(i * 100, i * 100 + 100, dtype=np.int64)}) for i in range(6)]
    with WorkerPool(_sizes, batch_format="numpy", concurrency=1, max_tasks_in_flight=1) as pool:
        for block in blocks:
            assert pool.run(block).table["y"].to_pylist() == [3 * v for v in block["x"].to_pylist()]
        assert len(pool._spare_inputs) == 1  # one file, written over by every task after the first

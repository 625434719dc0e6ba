"""What the summary counts: a write's rows and files apart, the UDF workers' CPU time in MapBatches, and
each output row once in `sluice runs`, on both runners."""

import io
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

import sluice as sl
from sluice import col
from sluice.observe.history import list_runs

ROWS = 20_000


@pytest.fixture
def lake(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"k": np.arange(ROWS) % 5, "v": np.arange(ROWS, dtype=np.int64)}), path)
    return str(path)


def test_write_shows_rows_written_and_files_apart(runner, lake, tmp_path):
    ds = sl.read_parquet(lake)
    result = ds.write_parquet(str(tmp_path / "out"), partition_by=["k"])
    write = next(op for op in ds.stats().operator_list() if op.name == "Write")
    assert write.rows_out == ROWS == result.rows  # not the number of files
    assert write.files == len(result.files) >= 5
    assert write.bytes_out == result.bytes  # the files' bytes, not the size of the list of files
    last_stage = max(ds.stats().stages.values(), key=lambda s: s.stage_id)
    assert last_stage.rows_done == ROWS  # what the progress bar counted
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(ds.stats().operator_table())
    assert f"Write ({write.files} files)" in console.export_text()


def test_map_batches_cpu_includes_the_workers(runner, lake):
    if runner == "ray":
        pytest.skip("on Ray the function runs inside the measured task itself")

    def burn(batch):
        started = time.process_time()
        while time.process_time() - started < 0.2:
            pass
        return batch.append_column("spent", pa.array([time.process_time() - started] * batch.num_rows))

    ds = sl.read_parquet(lake).map_batches(burn, batch_size=ROWS // 4, concurrency=2)
    out = ds.to_arrow()
    spent = sum(set(out["spent"].to_pylist()))  # each call's own CPU time, once per call
    mapped = next(op for op in ds.stats().operator_list() if op.name == "MapBatches")
    assert spent >= 0.7  # four calls of 0.2 s of CPU each
    assert mapped.cpu_s >= spent  # the workers' CPU is counted, not only the waiting thread's


def test_sluice_runs_counts_each_output_row_once(runner, staged, lake, tmp_path):
    ds = sl.read_parquet(lake).sort("v", descending=True).filter(col("v") % 2 == 0)
    ds.write_parquet(str(tmp_path / "sorted"))
    assert ds.stats().output_rows == ROWS // 2
    run = next(r for r in list_runs(sl.config.current().runs_dir) if r["run_id"] == ds.stats().run_id)
    assert run["output_rows"] == ROWS // 2
    assert ds.count() == ROWS // 2 and ds.stats().output_rows == ROWS // 2


def test_written_types_read_back_as_they_went_in(runner, tmp_path):
    """Blocks hold large_string / large_list (Polars' types); the files hold what the input had."""
    source = pa.table({"s": ["a", None, "ccc"], "tags": [[1, 2], [], None], "b": [b"x", b"", None],
                       "nested": [{"names": ["p", "q"]}, None, {"names": []}]})
    sl.from_arrow(source).write_parquet(str(tmp_path / "typed"))
    files = sorted((tmp_path / "typed").glob("*.parquet"))
    written = pq.read_table(files).select(source.column_names)
    assert written.schema == source.schema
    assert written.to_pylist() == source.to_pylist()
    assert sl.read_parquet(str(tmp_path / "typed")).to_arrow().select(source.column_names).to_pylist() == \
        source.to_pylist()

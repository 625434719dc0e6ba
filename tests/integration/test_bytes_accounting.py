"""The run summary's byte totals match bytes counted independently, on disk.

bytes processed = input read + shuffle write + shuffle read + output write. Input is the size of
the files scanned; output the size of the files committed; shuffle the size of the exchange files
a resumable (writing) run persists, kept here with keep_exchanges so the test can weigh them.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col
from sluice import config as sl_config

# what these tests check happens in exchanges: plan them even for small inputs (no fusion)
pytestmark = pytest.mark.usefixtures("staged")


def _size(paths) -> int:
    return sum(os.path.getsize(p) for p in paths)


@pytest.fixture
def lake(tmp_path):
    rng = np.random.default_rng(11)
    facts, dims = tmp_path / "facts", tmp_path / "dims"
    facts.mkdir()
    dims.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"k": rng.integers(0, 5000, 200_000), "v": rng.random(200_000)}),
                       facts / f"f{i}.parquet")
    pq.write_table(pa.table({"k": np.arange(5000), "g": np.arange(5000) % 97}), dims / "d.parquet")
    return facts, dims


@pytest.mark.parametrize("strategy", ["shuffle", "broadcast"])
def test_summary_totals_match_file_sizes(lake, tmp_path, monkeypatch, strategy, runner):
    monkeypatch.setenv("SLUICE_KEEP_EXCHANGES", "1")
    facts, dims = lake
    out = tmp_path / "out"
    ds = (sl.read_parquet(str(facts)).join(sl.read_parquet(str(dims)), on="k", strategy=strategy)
          .group_by("g").agg(n=col("v").count(), s=col("v").sum()))
    result = ds.write_parquet(str(out), partition_by=None)
    stats = ds.stats()

    inputs = glob.glob(f"{facts}/*.parquet") + glob.glob(f"{dims}/*.parquet")
    assert stats.input_bytes == _size(inputs)
    outputs = [p for p in glob.glob(f"{out}/**/*.parquet", recursive=True) if "/_" not in p]
    assert stats.output_bytes == _size(outputs) == result.bytes
    run_dir = os.path.join(sl_config.current().runs_dir, stats.run_id)
    exchange_files = glob.glob(f"{run_dir}/exchanges/*/*.arrow")
    assert len({os.path.dirname(p) for p in exchange_files}) == (3 if strategy == "shuffle" else 2)
    assert stats.shuffle_bytes_written == _size(exchange_files)
    assert stats.shuffle_bytes_read == _size(exchange_files)  # every partition is read once

    total = stats.input_bytes + stats.shuffle_bytes_written + stats.shuffle_bytes_read + stats.output_bytes
    assert stats.bytes_processed == total
    assert any(line.startswith("bytes processed") for line in stats.footer_lines())
    with open(os.path.join(run_dir, "run.json")) as f:
        recorded = json.load(f)
    assert recorded["bytes_processed"] == total
    assert recorded["input_bytes"] == stats.input_bytes and recorded["output_bytes"] == stats.output_bytes


def test_exchange_files_are_removed_when_a_run_succeeds(lake, tmp_path, runner):
    facts, _ = lake
    ds = sl.read_parquet(str(facts)).group_by("k").agg(n=col("v").count())
    ds.write_parquet(str(tmp_path / "out"))
    run_dir = os.path.join(sl_config.current().runs_dir, ds.stats().run_id)
    assert os.path.isfile(os.path.join(run_dir, "plan.pkl"))
    assert not os.path.exists(os.path.join(run_dir, "exchanges"))

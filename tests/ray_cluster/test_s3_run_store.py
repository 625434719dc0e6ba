"""The run store on S3 (moto's server on loopback), under the Ray runner: a crash, then a resume.

A write job (a shuffle join, an aggregation, a Parquet write) runs in a child process with
`checkpoint_dir` on S3 and is killed with SIGKILL after its third map-task checkpoint: the
dimension table's exchange is complete and two map tasks over the facts are saved. The plan,
the task logs and the exchange files must be on S3, none under the local run directory. The
resumed run restores the complete exchange, skips the two map tasks, and its output must equal
DuckDB's; the exchange files on S3 are removed once it succeeds. The local runner refuses an
S3 run store with an error that says what to do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import config as sluice_config

pytest.importorskip("ray")
pytest.importorskip("moto.server")
if "checkpoint_dir" not in sluice_config.Config.__dataclass_fields__:
    pytest.skip("needs the checkpoint_dir setting (the run store on pyarrow.fs), not in this tree yet",
                allow_module_level=True)
from integration.conftest import moto_s3  # tests/ is on sys.path: the root conftest's directory

pytestmark = [pytest.mark.ray, pytest.mark.slow]

JOB = """
import sys
import sluice as sl
from sluice import col
facts, dims, out = sys.argv[1:4]
joined = sl.read_parquet(facts).join(sl.read_parquet(dims), on="k", strategy="shuffle")
joined.group_by("g").agg(n=col("v").count(), s=col("v").sum()).write_parquet(out)
"""


@pytest.fixture
def s3_store(ray_instance, tmp_path):
    saved = dict(sluice_config._overrides)
    with moto_s3("runs", set_environment=True) as (fs, _):
        sl.configure(runner="ray", ray_address=ray_instance, runs_dir=str(tmp_path / "runs"),
                     checkpoint_dir="s3://runs/sluice", memory_budget="64MiB")
        yield fs
    sluice_config._overrides.clear()
    sluice_config._overrides.update(saved)


def _names(fs: pafs.FileSystem, root: str) -> list[str]:
    try:
        return [i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))]
    except FileNotFoundError:
        return []


def test_a_run_killed_mid_exchange_resumes_from_its_store_on_s3(s3_store, ray_instance, tmp_path):
    facts, dims = tmp_path / "facts", tmp_path / "dims"
    facts.mkdir()
    dims.mkdir()
    rng = np.random.default_rng(3)
    for i in range(6):  # incompressible values under a 64 MiB budget: several map tasks
        pq.write_table(pa.table({"k": rng.integers(0, 5000, 60_000), "v": rng.integers(0, 1 << 40, 60_000)}),
                       facts / f"part-{i}.parquet")
    pq.write_table(pa.table({"k": np.arange(5000), "g": np.arange(5000) % 97}), dims / "dims.parquet")
    script, out, runs = tmp_path / "job.py", tmp_path / "out", tmp_path / "runs"
    script.write_text(JOB)
    env = dict(os.environ, SLUICE_RUNNER="ray", SLUICE_RAY_ADDRESS=ray_instance, SLUICE_RUNS_DIR=str(runs),
               SLUICE_CHECKPOINT_DIR="s3://runs/sluice", SLUICE_MEMORY_BUDGET="64MiB", SLUICE_PROGRESS="0",
               SLUICE_TEST_CRASH_AT="mid-exchange:3")
    child = subprocess.run([sys.executable, str(script), str(facts), str(dims), str(out)], env=env,
                           capture_output=True, text=True, timeout=180, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    (run_id,) = [n for n in os.listdir(runs) if not n.startswith("_")]

    stored = _names(s3_store, f"runs/sluice/{run_id}")
    assert f"runs/sluice/{run_id}/plan.pkl" in stored
    assert sum(1 for n in stored if n.endswith("/index.json")) == 1  # the dimension table's exchange
    assert sum(1 for n in stored if n.endswith("/map_tasks.jsonl")) == 2
    assert not os.path.exists(runs / run_id / "plan.pkl") and not os.path.exists(runs / run_id / "exchanges")

    sl.resume(run_id)
    expected = duckdb.sql(f"SELECT g, count(v) AS n, sum(v)::BIGINT AS s FROM read_parquet('{facts}/*.parquet') "
                          f"JOIN read_parquet('{dims}/*.parquet') USING (k) GROUP BY g ORDER BY g").fetchall()
    result = sl.read_parquet(str(out)).to_arrow().sort_by("g")
    assert list(zip(*(result[c].to_pylist() for c in ("g", "n", "s")))) == expected
    events = [json.loads(line) for line in (runs / run_id / "events.jsonl").read_text().splitlines()]
    checkpoints = [(e["what"], e["detail"]) for e in events if e["event"] == "checkpoint"]
    assert sum(1 for what, _ in checkpoints if what == "exchange restored") == 1
    (restored,) = [detail for what, detail in checkpoints if what == "map tasks restored"]
    assert restored.startswith("2 of ")
    assert not any("/exchanges/" in n for n in _names(s3_store, f"runs/sluice/{run_id}"))  # removed on success


def test_the_local_runner_refuses_a_run_store_on_s3(s3_store, tmp_path):
    sl.configure(runner="local")
    with pytest.raises(sl.SluiceError, match="checkpoint_dir.*local or mounted path"):
        sl.range(10).write_parquet(str(tmp_path / "out"))

"""The ray suite (sluice on a simulated 2-node Ray cluster against Ray Data): cluster shape,
answer checks, the per-workload reference, the data directory, the target summary, and
sluice-ray end to end on tiny data (Ray Data is not run: it lives in its own virtualenv)."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import data, runner  # noqa: E402
from bench.engines import ray_start  # noqa: E402
from bench.suites import SUITES, ray_cluster, seeds, udf  # noqa: E402

TINY_SEEDS = {**seeds.DATA, "events": 20_000, "duplicates": 2_000, "users": 500, "items": 1_000,
              "skew_fact": 2_000, "skew_dim": 100, "parts": 2}
TINY_UDF = {**udf.DATA, "rows": 3000, "parts": 3, "row_group": 1000, "inference_rows": 300, "train_rows": 100}


def test_the_cluster_splits_the_threads_between_its_nodes(monkeypatch):
    assert ray_start.node_cpus(2, 2) == [1, 1]
    assert ray_start.node_cpus(5, 2) == [3, 2]
    with pytest.raises(ValueError, match="--threads 2"):
        ray_start.node_cpus(1, 2)
    monkeypatch.delenv("BENCH_RAY_NODES", raising=False)
    assert ray_start.cluster_shape(4) is None
    for key, value in ray_cluster.ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    shape = ray_start.cluster_shape(4)
    assert shape == {"nodes": 2, "cpus": [2, 2], "object_store_mib": ray_cluster.OBJECT_STORE_MIB}
    assert ray_start.describe(shape) == f"2 nodes (2+2 CPUs), {ray_cluster.OBJECT_STORE_MIB} MiB object store each"


def test_each_workload_is_checked_and_referenced_as_in_its_own_suite():
    assert SUITES["ray"] is ray_cluster
    assert runner.reference_for(ray_cluster, "join_broadcast_write") == "duckdb"
    assert runner.reference_for(ray_cluster, "per_row_score") == "raw"
    assert runner.reference_for(seeds, "join_broadcast_write") == "duckdb"   # suites without REFERENCES
    join = seeds.dict_answer(groups=840, n=10, spend=5.0)
    assert ray_cluster.check("join_broadcast_write", dict(join, spend=5.0 * (1 + 1e-9)), join) is None
    assert "n: got 11" in ray_cluster.check("join_broadcast_write", dict(join, n=11), join)
    score = udf.score_answer(20, 10.0, 3)
    assert ray_cluster.check("per_row_score", score, score) is None
    # udf's tolerance (1e-9) applies to the UDF, not seeds' 1e-6
    assert "sum_score" in ray_cluster.check("per_row_score", udf.score_answer(20, 10.0 * (1 + 1e-7), 3), score)


def test_the_suite_environment_reaches_every_engine_process(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_RAY_NODES", raising=False)
    cmd, env = runner._launch("ray-data-broadcast", "w", tmp_path, 2, None, ray_cluster.ENVIRONMENT)
    assert env["BENCH_RAY_NODES"] == "2" and env["BENCH_RAY_BROADCAST"] == "1"
    assert cmd[cmd.index("-m") + 1] == "bench.engines.ray_data"
    _, env = runner._launch("sluice-ray", "w", tmp_path, 2, None)      # another suite: no cluster
    assert "BENCH_RAY_NODES" not in env


def test_the_data_directory_links_the_seeds_tables_and_the_first_udf_files(tmp_path):
    for table in seeds.TABLES:
        (tmp_path / "seeds" / table).mkdir(parents=True)
        (tmp_path / "seeds" / table / "part-0.parquet").write_text(table)
    (tmp_path / "udf" / "rows").mkdir(parents=True)
    for i in range(4):
        (tmp_path / "udf" / "rows" / f"part-{i}.parquet").write_text(str(i))
    root = Path(ray_cluster.link_data(tmp_path / "ray", tmp_path / "seeds", tmp_path / "udf", udf_parts=2))
    assert sorted(p.name for p in root.iterdir()) == sorted([*seeds.TABLES, "rows"])
    assert (root / "users" / "part-0.parquet").read_text() == "users"
    assert sorted(p.name for p in (root / "rows").iterdir()) == ["part-0.parquet", "part-1.parquet"]
    (tmp_path / "udf" / "rows" / "part-0.parquet").unlink()      # the udf suite regenerates...
    (tmp_path / "udf" / "rows" / "part-0.parquet").write_text("new")
    ray_cluster.link_data(root, tmp_path / "seeds", tmp_path / "udf", udf_parts=2)
    assert (root / "rows" / "part-0.parquet").read_text() == "new"   # ...and the links follow


def _ok(workload, engine, median):
    return {"workload": workload, "engine": engine, "status": "ok", "median_s": median}


def test_the_summary_gives_the_speed_ups_against_the_targets():
    rows = [_ok("join_broadcast_write", "sluice-ray", 2.0), _ok("join_broadcast_write", "ray-data", 8.0),
            _ok("join_broadcast_write", "ray-data-broadcast", 5.0),
            _ok("per_row_score", "sluice-ray", 10.0), _ok("per_row_score", "ray-data", 9.0)]
    text = "\n".join(ray_cluster.results_summary({"threads": 2, "results": rows}))
    assert "| join_broadcast_write | 2.000 | 8.000 | 4.00 | >= 3x: met | 5.000 | 2.50 |" in text
    assert "| per_row_score | 10.000 | 9.000 | 0.90 | >= 1x: NOT met | - | - |" in text
    assert "- join_broadcast_write: sluice-ray 4.00x Ray Data (target >= 3x: met)" in text
    rows[1] = {"workload": "join_broadcast_write", "engine": "ray-data", "status": "error"}
    text = "\n".join(ray_cluster.results_summary({"threads": 2, "results": rows}))
    assert "| join_broadcast_write | 2.000 | error | - | >= 3x |" in text
    assert "not comparable (target >= 3x: not measured)" in text


@pytest.mark.ray
@pytest.mark.slow
def test_sluice_on_a_two_node_cluster_matches_duckdb_and_the_raw_loop(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setattr(data, "DATA_ROOT", tmp_path)
    monkeypatch.setattr(data, "SEEDS_DIR", tmp_path / "seeds")
    root = ray_cluster.link_data(tmp_path / "ray", data.ensure_seeds(TINY_SEEDS), data.ensure_udf(TINY_UDF),
                                 udf_parts=2)
    rows, refs = runner.run_suite(ray_cluster, ["sluice-ray"], root, threads=2, runs=1, timeout=120)
    assert refs["join_broadcast_write"]["n"] == TINY_SEEDS["events"]
    assert refs["per_row_score"]["rows"] == 2000          # the first 2 of 3 files
    for row in rows:
        assert row["engine"] == "sluice-ray"
        assert row["status"] == "ok", (row["workload"], row.get("message"), row.get("stderr_tail"))
        assert len(row["times_s"]) == 1
        assert row["versions"]["runner"] == "ray" and row["versions"]["cluster"].startswith("2 nodes (1+1 CPUs)")
        assert row["notes"][0]["ray_processes_peak_rss_mib"] > 0

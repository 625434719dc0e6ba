"""The udf and scale suites: answer checks, the limit and growth summaries, seeded data, and
the real harness end to end with the engines of the dev venv (raw, sluice, DuckDB, Polars)
on tiny generated data.  No peer is installed or run."""
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import data, report, runner  # noqa: E402
from bench.suites import scale, udf  # noqa: E402

HOST = {"cpu_model": "Test CPU", "cores": 2, "usable_cores": 2, "ram_gib": 4.0, "os": "Linux",
        "python": "3.11", "git_commit": "abc", "git_dirty": False, "loadavg_1m": 0.0}
TINY_UDF = {**udf.DATA, "rows": 3000, "parts": 2, "row_group": 1000, "inference_rows": 2000, "train_rows": 300}
TINY_SCALE = {**scale.DATA, "parts": 2, "fact_rows": {"0.1x": 400, "1x": 4000, "4x": 16000}}


def ok(workload, engine, median, rss=100.0):
    return {"workload": workload, "engine": engine, "status": "ok", "times_s": [median], "median_s": median,
            "min_s": median, "max_s": median, "peak_rss_mib": rss, "versions": {engine: "1.0"}}


def doc(suite, rows, references=None, threads=2):
    return report.build(suite, f"python -m bench run --suite {suite}", 1.0, 3, threads, rows,
                        references or {}, {}, HOST, process_per="run")


# ---------------------------------------------------------------- answers


def test_udf_answers_match_exactly_on_counts_and_closely_on_sums():
    ref = udf.score_answer(20, 10.0, 3)
    assert udf.check("per_row_score", udf.score_answer(20, 10.0 * (1 + 1e-12), 3), ref) is None
    assert "high: got 4" in udf.check("per_row_score", udf.score_answer(20, 10.0, 4), ref)
    assert "sum_score" in udf.check("per_row_score", udf.score_answer(20, 10.001, 3), ref)
    assert "expected keys" in udf.check("per_row_score", {"rows": 20}, ref)
    inf = udf.inference_answer(5, [2, 3], 17)
    assert inf == {"rows": 5, "class_0": 2, "class_1": 3, "class_2": 0, "checksum": 17}
    assert "checksum" in udf.check("sklearn_inference", udf.inference_answer(5, [2, 3], 18), inf)


def test_score_is_the_per_row_function_over_lists():
    assert udf.score_columns([0, 96], [0.0, 1.0], [1.0, 0.0]) == [udf.score(0, 0.0, 1.0), udf.score(96, 1.0, 0.0)]
    assert udf.score(0, 0.0, 1.0) == 0.5          # clipped to 0, then the bucket bonus
    assert udf.score(96, 1.0, 0.0) == 1.0         # clipped to 1


def test_scale_sizes_are_the_multiples_of_the_budget():
    for size, multiple in scale.MULTIPLES.items():
        rows = scale.DATA["fact_rows"][size]
        in_memory = rows * scale.FACT_ROW_BYTES + rows // scale.FACT_PER_DIM * scale.DIM_ROW_BYTES
        assert in_memory / scale.BUDGET_BYTES == pytest.approx(multiple, rel=1e-3)
    assert scale.data_dir("/d", "join_agg_4x") == "/d/4x"
    assert scale.check("w", scale.answer(3, 10, 1.5), scale.answer(3, 10, 1.5)) is None
    assert "n: got 11" in scale.check("w", scale.answer(3, 11, 1.5), scale.answer(3, 10, 1.5))


# ---------------------------------------------------------------- summaries


def test_udf_summary_is_relative_to_raw_times_cores():
    rows = [ok("per_row_score", "raw", 8.0), ok("per_row_score", "sluice", 5.0),
            ok("per_row_score", "ray-data", 20.0),
            {"workload": "per_row_score", "engine": "daft", "status": "error", "times_s": [], "message": "x"},
            ok("sklearn_inference", "raw", 10.0), ok("sklearn_inference", "sluice", 4.0),
            ok("sklearn_inference", "ray-data", 8.0)]
    refs = {"per_row_score": udf.score_answer(20_000_000, 1.0, 1),
            "sklearn_inference": udf.inference_answer(10_000_000, [1], 0)}
    text = "\n".join(report.udf_summary(doc("udf", rows, refs)))
    assert "raw loop's 8.00 s / 2 cores = 4.00 s" in text
    assert "| sluice | 5.000 | 80% | - | 2,000,000 |" in text           # 4.0 / 5.0; 20M / 5 s / 2
    assert "| ray-data | 20.000 | 20% | 4.00 | 500,000 |" in text
    assert "| daft | error | | | |" in text
    assert "- sluice at 80% of the limit (target >= 85%: NOT met); 4.00x Ray Data (target >= 3x: met)" in text
    assert "sluice 1,250,000 rows/s per core, Ray Data 625,000: sluice 2.00x" in text
    faster = "\n".join(report.udf_summary(doc("udf", [ok("per_row_score", "raw", 8.0),
                                                       ok("per_row_score", "sluice-warm", 4.4)], refs)))
    assert "- sluice-warm at 91% of the limit (target >= 85%: met)" in faster


def test_scale_summary_shows_growth_of_time_and_memory():
    budget = scale.BUDGET_BYTES / 2**20
    rows = [ok("join_agg_0.1x", "sluice", 1.0, 200), ok("join_agg_1x", "sluice", 8.0, 400),
            ok("join_agg_4x", "sluice", 40.0, budget * 1.1),
            ok("join_agg_0.1x", "polars", 0.5, 300), ok("join_agg_1x", "polars", 5.0, 1500)]
    text = "\n".join(report.scale_summary(doc("scale", rows)))
    assert "| sluice | 1.000 | 200 | 8.000 | 400 | 40.000 | 563 | 8.00 | 5.00 | 1.10 |" in text
    assert "| polars | 0.500 | 300 | 5.000 | 1500 | - |  | 10.00 | - | - |" in text


# ---------------------------------------------------------------- data


def test_generated_data_is_seeded_cached_and_redone_when_its_parameters_change(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_ROOT", tmp_path)
    root = data.ensure_udf(TINY_UDF)
    manifest = json.loads((root / "udf.json").read_text())
    assert manifest["params"] == TINY_UDF and sorted(manifest["tables"]) == ["features", "rows", "train"]
    first = (root / "rows" / "part-0.parquet").read_bytes()
    stamp = (root / "udf.json").stat().st_mtime_ns
    assert data.ensure_udf(TINY_UDF) == root and (root / "udf.json").stat().st_mtime_ns == stamp  # cached
    data.ensure_udf({**TINY_UDF, "train_rows": 301})                      # new parameters: regenerated
    assert json.loads((root / "udf.json").read_text())["params"]["train_rows"] == 301
    assert (root / "rows" / "part-0.parquet").read_bytes() == first       # same seed, same rows
    import pyarrow.parquet as pq
    assert pq.read_table(root / "rows").num_rows == 3000
    assert pq.read_table(root / "features").column("id").to_pylist() != list(range(2000))   # shuffled ids
    assert sorted(pq.read_table(root / "features").column("id").to_pylist()) == list(range(2000))
    scale_root = data.ensure_scale(TINY_SCALE)
    assert pq.read_table(scale_root / "4x" / "fact").num_rows == 16000
    assert sorted(pq.read_table(scale_root / "1x" / "dim").column("k").to_pylist()) == list(range(1000))


# ---------------------------------------------------------------- end to end


class _Suite:
    """A real suite with fewer workloads (as `--workloads` does)."""

    def __init__(self, suite, workloads):
        self._suite, self.WORKLOADS = suite, {w: suite.WORKLOADS[w] for w in workloads}

    def __getattr__(self, name):
        return getattr(self._suite, name)


def test_udf_suite_end_to_end_sluice_matches_the_raw_loop(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_ROOT", tmp_path)
    root = data.ensure_udf(TINY_UDF)
    rows, refs = runner.run_suite(udf, ["raw", "sluice"], root, threads=1, runs=1, timeout=120,
                                  process_per="workload")
    by = {(r["workload"], r["engine"]): r for r in rows}
    assert refs["per_row_score"]["rows"] == 3000 and refs["sklearn_inference"]["rows"] == 2000
    assert sum(refs["sklearn_inference"][f"class_{i}"] for i in range(udf.CLASSES)) == 2000
    for key, row in by.items():
        assert row["status"] == "ok", (key, row.get("message"), row.get("stderr_tail"))
        assert len(row["times_s"]) == 1
    assert "% of the limit" in report.table(doc("udf", rows, refs, threads=1))


def test_scale_suite_end_to_end_at_the_smallest_size(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_ROOT", tmp_path)
    root = data.ensure_scale(TINY_SCALE)
    rows, refs = runner.run_suite(_Suite(scale, ["join_agg_0.1x"]), ["duckdb", "sluice", "polars"], root,
                                  threads=2, runs=1, timeout=120, process_per="workload")
    assert refs["join_agg_0.1x"]["n"] == 400
    for row in rows:
        assert row["status"] == "ok", (row["engine"], row.get("message"), row.get("stderr_tail"))


def test_a_suite_can_time_its_reference_even_when_left_out(tmp_path):
    here = Path(__file__).resolve().parent
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    import fake_suite
    (tmp_path / "numbers.txt").write_text("5\n3\n")
    log = tmp_path / "calls.log"
    scripts = {}
    for mode in ("ref", "right"):
        script = tmp_path / f"engine_{mode}.py"
        script.write_text(f"import sys\nsys.path.insert(0, {str(here)!r})\nimport fake_engine\n"
                          f"fake_engine.main({mode!r}, {str(log)!r})\n")
        scripts[mode] = script
    timed = _Suite(fake_suite, ["total"])
    timed.TIME_REFERENCE = True
    rows, _ = runner.run_suite(timed, ["right"], tmp_path, threads=1, runs=1, timeout=60,
                               process_per="run", scripts=scripts)
    assert [(r["engine"], r["status"], len(r["times_s"])) for r in rows] == [("ref", "ok", 1), ("right", "ok", 1)]
    rows, _ = runner.run_suite(_Suite(fake_suite, ["total"]), ["right"], tmp_path, threads=1, runs=1,
                               timeout=60, process_per="run", scripts=scripts)
    assert [r["engine"] for r in rows] == ["right"]

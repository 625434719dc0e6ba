"""Report building: the RESULTS.md table, ratios to sluice and to the best engine, TPC-H
geomean and >3x list, the skew summary, and section replacement in RESULTS.md."""
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402

HOST = {"cpu_model": "Test CPU", "cores": 2, "usable_cores": 2, "ram_gib": 4.0, "os": "Linux",
        "python": "3.11", "git_commit": "abc", "git_dirty": False, "loadavg_1m": 0.0}


def ok(workload, engine, median, **kw):
    return {"workload": workload, "engine": engine, "status": "ok", "times_s": [median],
            "median_s": median, "min_s": median, "max_s": median, "peak_rss_mib": 100.0,
            "versions": {engine: "1.0"}, **kw}


def bad(workload, engine, status, message):
    return {"workload": workload, "engine": engine, "status": status, "times_s": [],
            "message": message, "versions": {engine: "1.0"}}


def doc(suite, rows, **kw):
    return report.build(suite, "python -m bench run --suite " + suite, 1.0, 3, 2, rows, {}, {},
                        HOST, process_per="workload", **kw)


def test_geomean():
    assert report.geomean([4.0, 1.0]) == 2.0
    assert math.isclose(report.geomean([2.0, 2.0, 2.0]), 2.0)
    assert report.geomean([]) is None


def test_table_ratios_to_sluice_and_best():
    d = doc("core", [ok("w", "sluice", 2.0), ok("w", "polars", 1.0), ok("w", "duckdb", 4.0)])
    lines = report._md_table(d)
    sluice, polars, duck = lines[2:5]
    assert "| w | sluice | 2.000 | 2.000 | 2.000 | 1.00 | 2.00 | 100 | sluice 1.0 |" == sluice
    assert "| 0.50 | 1.00 |" in polars
    assert "| 2.00 | 4.00 |" in duck
    assert report.core_summary(d) == ["- w: sluice / polars = 2.00 (target <= 1.5: NOT met)"]


def test_core_summary_splits_the_gap_with_the_handwritten_floor():
    d = doc("core", [ok("w", "sluice", 1.4), ok("w", "handwritten", 1.2), ok("w", "polars", 1.0)])
    met, split = report.core_summary(d)
    assert met == "- w: sluice / polars = 1.40 (target <= 1.5: met)"
    assert "handwritten / polars = 1.20" in split and "sluice / handwritten = 1.17" in split


def test_wrong_and_na_rows_show_status_and_no_time():
    d = doc("tpch", [bad("q01", "sluice", "wrong", "warm-up: 3 rows, expected 4"),
                     ok("q01", "duckdb", 1.0), bad("q01", "polars", "n/a", "no | pipes")])
    lines = report._md_table(d)
    assert lines[2].startswith("| q01 | sluice | wrong: warm-up: 3 rows, expected 4 | | |")
    assert "n/a: no \\| pipes" in lines[4]
    assert "| 1.000 |" in lines[3] and "| - | 1.00 |" in lines[3]   # no sluice row to divide by


def test_tpch_ratio_geomean_and_queries_over_3x():
    rows = [ok("q01", "sluice", 4.0), ok("q01", "duckdb", 1.0), ok("q01", "polars", 2.0),
            ok("q02", "sluice", 1.0), ok("q02", "duckdb", 2.0), ok("q02", "polars", 1.0),
            bad("q03", "sluice", "wrong", "x"), ok("q03", "duckdb", 1.0), ok("q03", "polars", 1.0)]
    d = doc("tpch", rows)
    r = report.tpch_ratios(d)
    assert r["q01"] == (4.0, "duckdb", 1.0, 4.0)
    assert r["q02"] == (1.0, "polars", 1.0, 1.0)
    assert r["q03"][3] is None
    text = "\n".join(report.tpch_summary(d))
    assert "| q01 | 4.000 | 1.000 | 2.000 | duckdb | 4.00 **>3x** |" in text
    assert "| q03 | wrong | 1.000 | 1.000 | duckdb | - |" in text
    assert "over 2 queries: 2.00 (target <= 1.5: NOT met)" in text
    assert "queries over 3x: q01 (4.00x)" in text
    assert "not comparable (sluice or both peers not ok): q03" in text


def test_seeds_summary_shows_adaptive_on_and_off():
    notes = [{"reduce_tasks": {"tasks": 6, "slowest_rows": 400, "median_rows": 380},
              "skewed_keys": [{"key": "{'k': 7}", "rows": 300}]}]
    rows = [ok("skew_join", "sluice", 2.0, notes=notes),
            ok("skew_join", "sluice-noadaptive", 4.0,
               notes=[{"reduce_tasks": {"tasks": 5, "slowest_rows": 900, "median_rows": 100},
                       "skewed_keys": []}]),
            ok("skew_join", "duckdb", 1.0)]
    text = "\n".join(report.seeds_summary(doc("seeds", rows)))
    assert "| sluice (adaptive on) | 2.000 | 6 | 400 | 380 | 1.1 | {'k': 7} (300 rows) |" in text
    assert "| sluice-noadaptive | 4.000 | 5 | 900 | 100 | 9.0 | none |" in text
    assert "adaptive on / off wall time: 0.50" in text


def test_write_replaces_only_its_own_section(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text(report.MD_HEADER + "\n<!-- suite:core:begin -->\nold core\n<!-- suite:core:end -->\n")
    d = doc("tpch", [ok("q01", "sluice", 1.0), ok("q01", "duckdb", 1.0)], wall_s=12.0)
    out = report.write(d, results_md=md, results_dir=tmp_path / "results")
    assert out.exists() and out.name.startswith("tpch-")
    text = md.read_text()
    assert "old core" in text and "<!-- suite:tpch:begin -->" in text and "Whole run: 12 s." in text
    d2 = doc("tpch", [ok("q01", "sluice", 3.0), ok("q01", "duckdb", 1.0)])
    report.write(d2, results_md=md, results_dir=tmp_path / "results")
    text = md.read_text()
    assert text.count("<!-- suite:tpch:begin -->") == 1 and "| q01 | sluice | 3.000" in text
    assert "old core" in text


def test_a_named_section_sits_beside_the_suites_own_and_a_recorded_run_can_be_rewritten(tmp_path):
    md, results = tmp_path / "RESULTS.md", tmp_path / "results"
    quiet = doc("tpch", [ok("q01", "sluice", 1.0), ok("q01", "duckdb", 2.0)])
    report.write(quiet, results_md=md, results_dir=results)
    peers = doc("tpch", [ok("q01", "sluice", 5.0), ok("q01", "dask", 9.0)], section="tpch-peers")
    out = report.write(peers, results_md=md, results_dir=results)
    text = md.read_text()
    assert "| q01 | sluice | 1.000" in text and "| q01 | dask | 9.000" in text   # both sections kept
    assert "## tpch-peers" in text and f"(`bench/results/{out.name}`)" in text
    assert "sluice / best peer" in text.split("## tpch-peers")[1]   # still the tpch summary

    from bench.__main__ import main
    md_before, files_before = md.read_text(), sorted(results.iterdir())
    report_json = results / out.name
    import bench.report as module
    saved = module.RESULTS_MD
    module.RESULTS_MD = md
    try:
        assert main(["report", "--from", str(report_json), "--section", "tpch"]) == 0
    finally:
        module.RESULTS_MD = saved
    text = md.read_text()
    assert text != md_before and "| q01 | sluice | 1.000" not in text   # tpch now shows the peers' run
    assert text.count("| q01 | dask | 9.000") == 2
    assert sorted(results.iterdir()) == files_before   # rewriting a section records no new run


def test_a_run_with_more_peers_gives_each_engines_speed_against_sluice():
    rows = [ok("q01", "sluice", 1.0), ok("q01", "duckdb", 2.0), ok("q01", "polars", 0.5), ok("q01", "dask", 8.0),
            ok("q02", "sluice", 2.0), ok("q02", "duckdb", 2.0), ok("q02", "polars", 2.0),
            bad("q02", "dask", "error", "timeout after 120s")]
    text = "\n".join(report.tpch_summary(doc("tpch", rows)))
    assert "| dask | 1 | 8.00 | 8.00 | 8.00 | q02 (timeout after 120s) |" in text
    assert "| duckdb | 2 | 1.41 | 1.00 | 2.00 | - |" in text
    two_peers = [r for r in rows if r["engine"] != "dask"]
    assert "Each engine against sluice" not in "\n".join(report.tpch_summary(doc("tpch", two_peers)))

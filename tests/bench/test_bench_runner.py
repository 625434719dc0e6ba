"""The real runner and harness, end to end, on fake engines that live only in tests/bench.

Engines: ``ref`` (the reference), ``right``, ``wrong`` (off by one / wrong order),
``na`` (cannot express the workload), ``error`` (raises), ``crash`` (exits), ``partial``
(lacks a workload), ``slow`` (times out).  Each fake engine logs every call of a workload
function, so "never timed" is checked by counting calls, not only by reading the report.
"""
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import fake_suite  # noqa: E402

from bench import report, runner  # noqa: E402

MODES = ("ref", "right", "wrong", "na", "error", "crash", "partial", "slow", "libnotimpl")


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "numbers.txt").write_text("5\n3\n11\n8\n")
    log = tmp_path / "calls.log"
    scripts = {}
    for mode in MODES:
        script = tmp_path / f"engine_{mode}.py"
        script.write_text(f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport fake_engine\n"
                          f"fake_engine.main({mode!r}, {str(log)!r})\n")
        scripts[mode] = script
    return data, log, scripts


def calls(log, mode, workload):
    lines = log.read_text().splitlines() if log.exists() else []
    return lines.count(f"{mode} {workload}")


def run(setup, engines, process_per, runs=2, timeout=60.0):
    data, _, scripts = setup
    rows, refs = runner.run_suite(fake_suite, engines, data, threads=1, runs=runs,
                                  timeout=timeout, process_per=process_per, scripts=scripts)
    return {(r["workload"], r["engine"]): r for r in rows}, refs


@pytest.mark.parametrize("process_per", ["workload", "run"])
def test_wrong_engine_is_flagged_and_never_timed(setup, process_per):
    _, log, _ = setup
    rows, refs = run(setup, ["ref", "right", "wrong"], process_per)
    assert refs["total"] == {"columns": ["total"], "rows": [[27]]}
    for wl in ("total", "listing"):
        right, wrong = rows[(wl, "right")], rows[(wl, "wrong")]
        assert right["status"] == "ok" and len(right["times_s"]) == 2 and right["median_s"] >= 0
        assert calls(log, "right", wl) == 3                       # warm-up + 2 timed runs
        assert wrong["status"] == "wrong" and wrong["times_s"] == [] and "median_s" not in wrong
        assert calls(log, "wrong", wl) == 1                       # the warm-up only
        assert wrong["message"].startswith("warm-up: ")
    assert rows[("total", "wrong")]["answer"]["rows"] == [[28]]
    assert "column 0 (total): got 28, expected 27" in rows[("total", "wrong")]["message"]
    assert "row 0" in rows[("listing", "wrong")]["message"]      # right values, wrong order
    d = report.build("fake", "cmd", 1, 2, 1, list(rows.values()), refs, {}, {
        "cpu_model": "x", "cores": 1, "usable_cores": 1, "ram_gib": 1, "os": "x", "python": "x",
        "git_commit": None, "git_dirty": False, "loadavg_1m": 0.0})
    assert "| total | wrong | wrong: warm-up: row 0 column 0 (total): got 28" in report.table(d)


def test_na_error_crash_and_missing_workloads_are_reported_not_dropped(setup):
    rows, _ = run(setup, ["ref", "na", "error", "crash", "partial"], "workload", runs=1)
    assert rows[("total", "na")]["status"] == "n/a"
    assert rows[("total", "na")]["message"] == "fake engine cannot sum"
    assert rows[("total", "error")]["status"] == "error"
    assert rows[("total", "error")]["message"] == "ValueError: fake engine broke"
    assert "ValueError" in rows[("total", "error")]["stderr_tail"]
    assert rows[("total", "crash")]["status"] == "error"
    assert rows[("listing", "partial")]["status"] == "n/a"
    assert "not implemented" in rows[("listing", "partial")]["message"]
    assert rows[("total", "partial")]["status"] == "ok"


def test_a_library_not_implemented_error_is_an_error_not_na(setup):
    # pyarrow's ArrowNotImplementedError subclasses NotImplementedError: a real failure, not "cannot express"
    rows, _ = run(setup, ["ref", "libnotimpl"], "workload", runs=1)
    assert rows[("total", "libnotimpl")]["status"] == "error"
    assert "LibraryNotImplemented" in rows[("total", "libnotimpl")]["message"]


def test_no_reference_answer_means_no_timing(setup):
    data, log, scripts = setup
    rows, refs = runner.run_suite(fake_suite, ["right"], data, threads=1, runs=1, timeout=60,
                                  process_per="workload", scripts={**scripts, "ref": scripts["error"]})
    assert refs["total"] is None
    row = next(r for r in rows if r["workload"] == "total")
    assert row["status"] == "error" and "no reference answer" in row["message"]
    assert calls(log, "right", "total") == 0


def test_timeout_is_an_error_row(setup):
    rows, _ = run(setup, ["ref", "slow"], "workload", runs=1, timeout=1.5)
    assert rows[("total", "slow")]["status"] == "error"
    assert rows[("total", "slow")]["message"].startswith("timeout after 1.5s")

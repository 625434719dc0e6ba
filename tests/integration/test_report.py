"""`sluice report`: one self-contained HTML file per run, every chart drawn with data.

The main test runs a real pipeline (an exchange, a UDF that raises on a few rows, long
enough for several memory samples), writes its report with the CLI, opens it in headless
Chromium (Debian's `chromium`, installed here when missing) and reads back the DOM after
the page's script ran: each chart section must be there, claim data points, and have marks
the browser actually laid out. The other tests feed the report a synthetic run that follows
the documented `events.jsonl` schema, so the figures drawn can be checked exactly.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import time
from html.parser import HTMLParser

import pytest

import sluice as sl
from sluice import col
from sluice.api.cli import main
from sluice.observe.report import THROUGHPUT_BUCKETS, write_report

# what these tests check happens in exchanges: plan them even for small inputs (no fusion)
pytestmark = pytest.mark.usefixtures("staged")

CHARTS = {"timeline", "bytes", "skew", "memory", "throughput", "bad_records"}
BAD_EVERY, BAD_AT = 9973, 5  # the UDF fails on ids with id % BAD_EVERY == BAD_AT
BATCH = 4_000


# ---------------------------------------------------------------- headless Chromium


def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (as root, or through passwordless sudo)."""
    found = _find_chromium()
    if found:
        return found
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], check=False, capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        pytest.fail("The report test needs Debian's chromium and cannot install it without root: run "
                    "`sudo apt-get install -y chromium` once, then re-run the tests.")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = prefix + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300",
                        "chromium"]
    with open("/tmp/sluice-chromium-install.lock", "w") as lock:  # xdist workers install one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _find_chromium():
            result = subprocess.run(install, check=False, capture_output=True, text=True, env=env, timeout=900)
            if result.returncode != 0:  # package lists missing or stale on a fresh machine
                subprocess.run(prefix + ["apt-get", "update", "-q"], check=False, capture_output=True, env=env, timeout=600)
                result = subprocess.run(install, check=False, capture_output=True, text=True, env=env, timeout=900)
            if result.returncode != 0:
                pytest.fail(f"`{' '.join(install)}` failed ({result.returncode}):\n{result.stdout[-2000:]}"
                            f"\n{result.stderr[-2000:]}")
    found = _find_chromium()
    if not found:
        pytest.fail("apt-get installed chromium but no `chromium` is on PATH.")
    return found


def _headless(chromium: str, profile) -> list[str]:
    return [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic", f"--user-data-dir={profile}"]


def dump_dom(chromium: str, html_path: str, tmp_path) -> str:
    """The page's DOM after its scripts ran, as Chromium serializes it."""
    result = subprocess.run(_headless(chromium, tmp_path / "chromium-profile")
                            + ["--dump-dom", f"file://{os.path.abspath(html_path)}"],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "<body" in result.stdout, result.stderr[-3000:]
    return result.stdout


class Sections(HTMLParser):
    """Attributes of every `<section class="chart">`, of `<body>`, and every mark's status."""

    def __init__(self, page: str):
        super().__init__()
        self.charts: dict[str, dict] = {}
        self.body: dict = {}
        self.statuses: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "chart" in (attrs.get("class") or "").split():
            self.charts[attrs["data-chart"]] = attrs
        elif tag == "body":
            self.body = attrs
        elif tag == "rect" and "mark" in (attrs.get("class") or "") and attrs.get("data-status"):
            self.statuses.append(attrs["data-status"])


# ---------------------------------------------------------------- a real run


def flaky_slow(batch):
    """Fails on a few ids; a whole batch takes a little time, so the run spans several memory samples."""
    if batch.num_rows == BATCH:  # not the pieces of a failing batch being bisected
        time.sleep(0.2)
    ids = batch.column("id").to_pylist()
    bad = [i for i in ids if i % BAD_EVERY == BAD_AT]
    if bad:
        raise ValueError(f"cannot use id {bad[0]}")
    return batch


def _events(run_dir) -> list[dict]:
    with open(os.path.join(run_dir, "events.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_report_of_a_real_run_opens_in_chromium_with_every_chart(runner, chromium, tmp_path, capsys):
    runs = tmp_path / "runs"
    sl.configure(runs_dir=str(runs))
    rows = 40_000
    result = (sl.range(rows).map_batches(flaky_slow, batch_size=BATCH)
              .with_columns(k=col("id") % 37)
              .group_by("k").agg(n=sl.count(), total=col("id").sum()))
    result.write_parquet(str(tmp_path / "out"))
    run_id = result.stats().run_id
    expected_bad = sum(1 for i in range(rows) if i % BAD_EVERY == BAD_AT)
    assert result.stats().bad_records == expected_bad

    assert main(["report", run_id, "--runs-dir", str(runs)]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    run_dir = runs / run_id
    assert path == str(run_dir / "report.html")
    page = pathlib.Path(path).read_text(encoding="utf-8")
    for external in ("<link", "src=", "@import", "url("):  # one self-contained file: nothing to fetch
        assert external not in page

    dom = Sections(dump_dom(chromium, path, tmp_path))
    assert dom.body.get("data-report-ready") == "yes"  # the page's script ran in the browser
    assert set(dom.charts) == CHARTS
    for name, attrs in dom.charts.items():
        assert int(attrs["data-points"]) > 0, f"chart {name} drew no data: {attrs.get('data-empty')}"
        assert int(attrs["data-rendered-marks"]) > 0, f"chart {name} has no mark laid out by the browser"
        assert int(attrs["data-rendered-width"]) > 500, f"chart {name} is not laid out at page width"

    events = _events(run_dir)
    attempts = {(e["stage"], e["block"], e.get("attempt")) for e in events if e["event"] in ("task_start", "task_end")}
    assert int(dom.charts["timeline"]["data-points"]) == len(attempts)
    assert int(dom.charts["memory"]["data-points"]) == sum(e["event"] == "sample" for e in events)
    partitions = sum(len(x["partition_bytes"]) for x in json.loads((run_dir / "run.json").read_text())["exchanges"])
    assert int(dom.charts["skew"]["data-points"]) == min(partitions, 600)
    assert int(dom.charts["bad_records"]["data-points"]) == 1  # one operator failed
    assert f"{expected_bad:,} bad record(s)" in page


# ---------------------------------------------------------------- a synthetic run


def _write_synthetic_run(run_dir, exchange: bool = True, bad: bool = True, samples: int = 6, tasks: bool = True) -> dict:
    """A run.json and an events.jsonl that follow the documented schema, with known figures."""
    os.makedirs(run_dir, exist_ok=True)
    t0 = 1_800_000_000.0
    ops = [{"stage_id": 0, "name": "Scan", "blocks": 4, "rows_in": 0, "rows_out": 4000, "bytes_in": 0,
            "bytes_out": 32_000, "wall_s": 0.1, "cpu_s": 0.1},
           {"stage_id": 0, "name": "MapBatches(f)", "blocks": 4, "rows_in": 4000, "rows_out": 3990,
            "bytes_in": 32_000, "bytes_out": 31_920, "wall_s": 1.0, "cpu_s": 0.9}]
    run = {"run_id": "20300101-000000-synthetic", "status": "succeeded", "wall_s": 3.0, "started_at": t0,
           "operators": ops, "stages": [{"stage_id": 0, "name": "stage 0: Scan -> MapBatches(f)", "tasks_done": 4}],
           "exchanges": [], "bad_records": 10 if bad else 0, "settings": {"on_error": "quarantine"}, "plan": "Scan"}
    events = [{"ts": t0, "event": "run_start", "run_id": run["run_id"], "pid": 7, "host": "h", "threads": 2,
               "memory_budget": 1 << 30, "resumed": False},
              {"ts": t0, "event": "stage_start", "stage": 0, "name": "stage 0: Scan -> MapBatches(f)", "tasks_total": 4}]
    for i in range(4 if tasks else 0):
        start, end = t0 + 0.1 + 0.6 * i, t0 + 0.6 + 0.6 * i
        block = f"s0-t{i}"
        events.append({"ts": start, "event": "task_start", "stage": 0, "block": block, "attempt": 1, "pid": 7,
                       "host": "h", "thread": "w0", "sources": [{"file": "a.parquet", "first_row": i * 1000,
                                                                 "end_row": (i + 1) * 1000}]})
        failed = i == 2
        events.append({"ts": end, "event": "task_end", "stage": 0, "block": block, "attempt": 1,
                       "status": "failed" if failed else "ok", "rows": 1000, "bytes": 8000, "wall_s": end - start,
                       "error": "OSError: disk went away" if failed else None})
    if bad:
        events.append({"ts": t0 + 1, "event": "bad_records", "stage": 0, "operator": "MapBatches(f)", "block": "s0-t1",
                       "count": 10})
    if exchange:
        run["exchanges"] = [{"stage": 1, "partition_bytes": [100, 120, 90, 5000], "partition_rows": [1, 1, 1, 50]}]
        events.append({"ts": t0 + 2.5, "event": "exchange", "stage": 1, "partitions": [100, 120, 90, 5000],
                       "decisions": ["split partition 3 into 4 slices"]})
    for k in range(samples):
        events.append({"ts": t0 + 0.5 * k, "event": "sample", "rss_bytes": (200 + 10 * k) << 20,
                       "reserved_bytes": (50 + k) << 20, "budget_bytes": 1 << 30,
                       "stages": {"0": {"name": "stage 0", "rows": 700 * k, "tasks_done": k, "tasks_total": 4,
                                        "in_flight": 1, "state": ""}}})
    events += [{"ts": t0 + 2.9, "event": "stage_end", "stage": 0, "rows": 3990, "tasks": 4},
               {"ts": t0 + 3.0, "event": "run_end", "status": "succeeded", "wall_s": 3.0, "error": None}]
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump(run, f)
    with open(os.path.join(run_dir, "events.jsonl"), "w") as f:
        f.writelines(json.dumps(event) + "\n" for event in sorted(events, key=lambda e: e["ts"]))
    return run


def test_synthetic_run_draws_each_figure_of_the_event_log(tmp_path):
    run_dir = tmp_path / "run"
    _write_synthetic_run(run_dir, samples=6)
    page = pathlib.Path(write_report(str(run_dir))).read_text(encoding="utf-8")
    dom = Sections(page)
    assert set(dom.charts) == CHARTS
    points = {name: int(attrs["data-points"]) for name, attrs in dom.charts.items()}
    assert points["timeline"] == 4
    assert sorted(dom.statuses) == ["failed", "ok", "ok", "ok"]  # the failed task is drawn as failed
    assert "OSError: disk went away" in page  # and says why on hover
    assert points["memory"] == 6
    assert points["throughput"] == THROUGHPUT_BUCKETS  # one stage's rows/s, from its tasks
    assert points["skew"] == 4
    assert "split partition 3 into 4 slices" in page
    assert points["bad_records"] == 1 and "10 bad record(s)" in page  # counted from the events: no parquet here
    assert points["bytes"] == 2  # into and out of the one stage
    assert "20300101-000000-synthetic" in page and "sluice run 20300101-000000-synthetic" in page


def test_charts_without_data_say_so(tmp_path):
    run_dir = tmp_path / "run"
    _write_synthetic_run(run_dir, exchange=False, bad=False, samples=0)
    dom = Sections(pathlib.Path(write_report(str(run_dir), out=str(tmp_path / "r.html"))).read_text(encoding="utf-8"))
    assert set(dom.charts) == CHARTS
    assert dom.charts["skew"]["data-points"] == "0"
    assert dom.charts["skew"]["data-empty"] == "no exchanges in this run"
    assert dom.charts["bad_records"]["data-empty"] == "no bad records in this run"
    assert dom.charts["memory"]["data-points"] == "0" and "no memory samples" in dom.charts["memory"]["data-empty"]
    assert int(dom.charts["throughput"]["data-points"]) > 0  # from the finished tasks' rows instead of samples
    assert int(dom.charts["timeline"]["data-points"]) == 4


def test_throughput_falls_back_on_samples_without_task_events(tmp_path):
    run_dir = tmp_path / "run"
    _write_synthetic_run(run_dir, tasks=False, samples=6)
    dom = Sections(pathlib.Path(write_report(str(run_dir))).read_text(encoding="utf-8"))
    assert dom.charts["throughput"]["data-points"] == "5"  # a rate between each pair of samples
    assert dom.charts["timeline"]["data-points"] == "1"  # the stage's start to end, with no task bars


def test_cli_report_by_prefix_and_open(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    _write_synthetic_run(runs / "20300101-000000-synthetic")
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    out = tmp_path / "elsewhere" / "report.html"
    assert main(["report", "20300101-000000", "--runs-dir", str(runs), "--out", str(out), "--open"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.is_file() and opened == [out.as_uri()]
    assert main(["report", "nope", "--runs-dir", str(runs)]) == 1
    assert "is not a run" in capsys.readouterr().err

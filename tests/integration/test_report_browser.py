"""The HTML run report, laid out by a real headless Chromium through Playwright.

What a reader sees is what the browser draws, not what the HTML claims, so these tests open
the report of a real run in Chromium and check the layout: every stage the run had gets a
row in the timeline with at least one task bar the browser gave a size; every legend item's
box lies inside its chart's SVG box (an SVG clips what sticks out); and a screenshot of each
chart's plot area changes when its marks are hidden, so no chart that claims data is blank.
The last tests show the checker catches each fault: a report of a run with no events, a
chart with no marks, a legend drawn past the chart's edge.

Needs Chromium (`apt install chromium`; Debian's is /usr/bin/chromium) and Playwright
(`pip install playwright`, in the `dev` extra); the tests skip, saying so, when either is
missing. The browser is started and stopped here, with timeouts on launch and page load.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col
from sluice import config as sluice_config
from sluice.observe.report import CSS, write_report
from sluice.observe.report_svg import LEFT, RIGHT, WIDTH, Series, fmt_count, legend, line_chart, svg

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAUNCH_TIMEOUT_MS = 60_000
LOAD_TIMEOUT_MS = 30_000
EDGE_PX = 0.5  # sub-pixel rounding allowed at a box's edge
FILES, ROWS_PER_FILE, KEYS = 4, 5_000, 7
BAD_EVERY = 4_999  # the UDF fails on ids divisible by this: a few quarantined rows


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module, with a fresh profile; closed at the end."""
    executable = _chromium()
    if executable is None:
        pytest.skip("the browser report tests need Chromium: `apt install chromium` (Debian puts it at /usr/bin/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the browser report tests need Playwright: `pip install playwright` (it is in the `dev` extra)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, headless=True,
            args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS, viewport={"width": 1280, "height": 900})
        try:
            context.set_default_timeout(LOAD_TIMEOUT_MS)
            yield context
        finally:
            context.close()


# ---------------------------------------------------------------- the checker

LAYOUT_JS = """() => {
  const box = el => { const b = el.getBoundingClientRect();
    return {x: b.x + window.scrollX, y: b.y + window.scrollY, w: b.width, h: b.height}; };
  const sized = el => { const b = el.getBoundingClientRect(); return b.width > 0 && b.height > 0; };
  return Array.from(document.querySelectorAll('section.chart')).map(section => {
    const chart = section.querySelector('svg');
    return {name: section.dataset.chart, empty: section.dataset.empty || null, points: +section.dataset.points,
      svg: chart ? box(chart) : null,
      legend: chart ? Array.from(chart.querySelectorAll('.legend-item, text.legend')).map(g => ({label: g.textContent, ...box(g)})) : [],
      stages: Array.from(section.querySelectorAll('g.stage')).map(g => ({stage: +g.dataset.stage,
        label: g.querySelector('text > title') ? g.querySelector('text > title').textContent : '',
        bars: Array.from(g.querySelectorAll('rect.mark:not(.band)')).filter(sized).map(box)}))};
  });
}"""

# Decodes two PNG screenshots in the page and says how many colours the first has and how many pixels differ.
COMPARE_JS = """async ([first, second]) => {
  const pixels = async data => { const image = new Image(); image.src = 'data:image/png;base64,' + data;
    await image.decode(); const canvas = document.createElement('canvas');
    canvas.width = image.width; canvas.height = image.height; const context = canvas.getContext('2d');
    context.drawImage(image, 0, 0); return context.getImageData(0, 0, image.width, image.height).data; };
  const a = await pixels(first), b = await pixels(second);
  const colours = new Set(); let differ = 0;
  for (let i = 0; i < a.length; i += 4) {
    colours.add((a[i] << 16) | (a[i + 1] << 8) | a[i + 2]);
    if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) differ++;
  }
  return {colours: colours.size, differ: differ};
}"""

HIDE_MARKS = ".mark{visibility:hidden !important}"


def _inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] - EDGE_PX and inner["y"] >= outer["y"] - EDGE_PX
            and inner["x"] + inner["w"] <= outer["x"] + outer["w"] + EDGE_PX
            and inner["y"] + inner["h"] <= outer["y"] + outer["h"] + EDGE_PX)


def _plot_area(chart: dict) -> dict:
    """The chart's plot, in page pixels: right of the row labels, under the legend."""
    box, scale = chart["svg"], chart["svg"]["w"] / WIDTH
    top = max([item["y"] + item["h"] for item in chart["legend"]], default=box["y"])
    return {"x": box["x"] + LEFT * scale, "y": top, "width": (WIDTH - RIGHT - LEFT) * scale,
            "height": box["y"] + box["h"] - top}


def check_report(context, html_path, stages: set[int] | None = None, charts: set[str] = frozenset()) -> list[str]:
    """What is wrong with the report as Chromium lays it out; [] when nothing is.

    `stages`: the stages the run had, each of which needs a timeline row with a task bar. `charts`:
    those that must have data. Every chart drawn must have its legend inside it and be no blank screenshot.
    """
    page = context.new_page()
    try:
        page.goto(pathlib.Path(html_path).resolve().as_uri(), wait_until="load", timeout=LOAD_TIMEOUT_MS)
        layout = page.evaluate(LAYOUT_JS)
        problems = []
        by_name = {chart["name"]: chart for chart in layout}
        for name in sorted(charts):
            chart = by_name.get(name)
            if chart is None or chart["svg"] is None:
                problems.append(f"chart {name} is empty: {chart['empty'] if chart else 'not in the page'}")
        timeline = by_name.get("timeline") or {"stages": [], "svg": None}
        rows = {row["stage"]: row for row in timeline["stages"]}
        for stage in sorted(stages or ()):
            if stage not in rows:
                problems.append(f"stage {stage} has no row in the timeline")
        for stage, row in rows.items():
            inside = [bar for bar in row["bars"] if _inside(bar, timeline["svg"])]
            if not inside:
                problems.append(f"stage {stage} ({row['label']}) has no task bar in the timeline")
        drawn = [chart for chart in layout if chart["svg"] is not None]
        for chart in drawn:
            for item in chart["legend"]:
                if not _inside(item, chart["svg"]):
                    problems.append(f"chart {chart['name']}: legend item {item['label']!r} at {item} is clipped by "
                                    f"the chart's box {chart['svg']}")
        shown = {chart["name"]: page.screenshot(clip=_plot_area(chart), full_page=True) for chart in drawn}
        page.add_style_tag(content=HIDE_MARKS)
        hidden = {chart["name"]: page.screenshot(clip=_plot_area(chart), full_page=True) for chart in drawn}
        for name, shot in shown.items():
            seen = page.evaluate(COMPARE_JS, [base64.b64encode(shot).decode(), base64.b64encode(hidden[name]).decode()])
            if seen["colours"] < 2 or seen["differ"] == 0:
                problems.append(f"chart {name} is blank: its marks paint no pixel of its plot "
                                f"({seen['colours']} colour(s), {seen['differ']} pixel(s) from marks)")
        return problems
    finally:
        page.close()


# ---------------------------------------------------------------- real runs


def udf_that_fails_on_a_few_rows(batch):
    ids = batch.column("id").to_pylist()
    bad = [i for i in ids if i % BAD_EVERY == 0]
    if bad:
        raise ValueError(f"cannot use id {bad[0]}")
    return batch


@pytest.fixture
def lake(tmp_path):
    facts = tmp_path / "facts"
    facts.mkdir()
    for i in range(FILES):
        ids = list(range(i * ROWS_PER_FILE, (i + 1) * ROWS_PER_FILE))
        pq.write_table(pa.table({"id": ids, "k": [n % KEYS for n in ids]}), facts / f"part-{i}.parquet")
    pq.write_table(pa.table({"k": list(range(KEYS)), "name": [f"name-{k}" for k in range(KEYS)]}),
                   tmp_path / "dims.parquet")
    return tmp_path


def _scan_join_udf_group_write(lake, tmp_path) -> sl.Dataset:
    """Several stages: two scans, a UDF, a join and a group_by exchange, a partitioned write."""
    sl.configure(fuse_fraction=0)  # plan the exchanges as stages even for this small input
    facts = sl.read_parquet(str(lake / "facts")).map_batches(udf_that_fails_on_a_few_rows)
    ds = (facts.join(sl.read_parquet(str(lake / "dims.parquet")), on="k")
          .group_by("k", "name").agg(n=sl.count(), total=col("id").sum()))
    ds.write_parquet(str(tmp_path / "out"), partition_by=["name"])
    return ds


def _fused_group_by(lake, tmp_path) -> sl.Dataset:
    """One fused stage whose query runs on the driver, collected: no task of its own ran a chain."""
    ds = sl.read_parquet(str(lake / "facts")).group_by("k").agg(n=sl.count())
    ds.to_arrow()
    return ds


def _union_then_limit(lake, tmp_path) -> sl.Dataset:
    """A union and a limit, whose blocks are handed on without tasks."""
    sl.configure(fuse_fraction=0)
    facts = sl.read_parquet(str(lake / "facts"))
    ds = facts.filter(col("k") == 1).union(facts.filter(col("k") == 2)).limit(100)
    ds.to_arrow()
    return ds


PIPELINES = {"scan_join_udf_group_write": _scan_join_udf_group_write, "fused_group_by": _fused_group_by,
             "union_then_limit": _union_then_limit}


def _stages_of(run_dir) -> set[int]:
    with open(os.path.join(run_dir, "run.json")) as f:
        listed = {int(stage["stage_id"]) for stage in json.load(f).get("stages", [])}
    with open(os.path.join(run_dir, "events.jsonl")) as f:
        started = {int(e["stage"]) for e in map(json.loads, f) if e["event"] == "stage_start"}
    return listed | started


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_stage_has_task_bars_and_every_chart_fits(pipeline, runner, browser, lake, tmp_path):
    ds = PIPELINES[pipeline](lake, tmp_path)
    run_dir = os.path.join(sluice_config.current().runs_dir, ds.stats().run_id)
    stages = _stages_of(run_dir)
    assert stages
    charts = {"timeline", "bytes", "throughput"}
    if pipeline == "scan_join_udf_group_write":
        assert len(stages) >= 4
        charts |= {"skew", "bad_records"}
        # the write stage's bytes out are the files it wrote, not the file list it hands the driver
        with open(os.path.join(run_dir, "run.json")) as f:
            run = json.load(f)
        (write,) = [op for op in run["operators"] if op["name"] == "Write"]
        on_disk = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*.parquet"))
        assert write["bytes_out"] == run["output_bytes"] == on_disk
    assert check_report(browser, write_report(run_dir), stages, charts) == []


def test_long_stage_names_wrap_the_legend_inside_the_chart(browser, tmp_path):
    names = ["stage 1: Join -> MapBatches(a_long_udf_name) -> Select -> Write", "stage 22: FinalAggregate -> Write",
             "stage 3: WWW MMM WWW MMM WWW MMM WWW MMM WWW MMM WWW MMM WWW MMM WWW MMM WWW MMM WWW MMM WWW MMM",
             "stage 4: Scan", "stage 10008: 0123456789 0123456789 0123456789", "stage 5: Sort"]
    series = [Series(name, [(0.5, 10.0 * i), (1.5, 5.0)], "#4e79a7") for i, name in enumerate(names)]
    body, drawn = line_chart(series, 2.0, fmt_count, "rows/s", "throughput")
    page = tmp_path / "legend.html"
    page.write_text(f'<!DOCTYPE html><html><head><style>{CSS}</style></head><body><section class="chart" '
                    f'data-chart="throughput" data-points="{drawn}">{body}</section></body></html>', encoding="utf-8")
    assert check_report(browser, page) == []


# ---------------------------------------------------------------- the checker catches each fault


def test_checker_reports_a_run_with_no_events(browser, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "20300101-000000-empty", "status": "failed",
                                                  "stages": [{"stage_id": 0, "name": "stage 0: Scan"}]}))
    (run_dir / "events.jsonl").write_text("")
    problems = check_report(browser, write_report(str(run_dir)), {0}, {"timeline", "throughput"})
    assert any(p.startswith("chart timeline is empty: no task or stage events") for p in problems), problems
    assert any(p.startswith("chart throughput is empty") for p in problems), problems
    assert "stage 0 has no row in the timeline" in problems


def test_checker_reports_a_chart_without_marks_and_a_clipped_legend(browser, tmp_path):
    flat, _ = line_chart([Series("rows/s", [], "#4e79a7")], 2.0, fmt_count, "rows/s", "no points")
    past_the_edge, _ = legend([("a legend drawn past the right edge of its chart", "#f28e2b", "line")],
                              WIDTH - 60, 20, right=2 * WIDTH)
    bar = f'<rect class="mark" x="{LEFT + 10}" y="30" width="300" height="20" fill="#59a14f"><title>one bar</title></rect>'
    clipped = svg(60, [*past_the_edge, bar], "clipped legend")
    page = tmp_path / "faults.html"
    page.write_text(f'<!DOCTYPE html><html><head><style>{CSS}</style></head><body><section class="chart" '
                    f'data-chart="flat" data-points="1">{flat}'
                    f'</section><section class="chart" data-chart="clipped" data-points="1">{clipped}</section>'
                    "</body></html>", encoding="utf-8")
    problems = check_report(browser, page)
    assert any(p.startswith("chart flat is blank") for p in problems), problems
    assert any(p.startswith("chart clipped: legend item 'a legend drawn past") for p in problems), problems
    assert not any(p.startswith("chart clipped is blank") for p in problems), problems

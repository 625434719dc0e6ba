"""`sluice report RUN`: one self-contained HTML file that shows what a recorded run did.

Debugging a long job means seeing which stage was slow, where memory built up, which task
failed and how skewed an exchange was. The figures are already on disk, in the run's
`run.json` (per-operator totals, exchanges, settings, the plan), `events.jsonl` (every task's
start and end, memory and progress samples) and `bad_records/`. This module turns them into
a page that needs no network and no JavaScript library: the charts are inline SVG drawn by
`report_svg`, so the file can be mailed, archived or opened on an air-gapped machine.

Each chart is a `<section class="chart" data-chart=NAME data-points=N>`; a chart with no
data says why in words instead of disappearing.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import SluiceError
from .events import EVENTS_FILE, read_events
from .history import RUN_FILE
from .report_svg import (
    AXIS_H, FAILED, LEFT, MUTED, RIGHT, TOP, WIDTH, Bar, BarRow, Scale, Series, color, column_chart, esc, fmt_bytes,
    fmt_count, fmt_seconds, hbar_chart, legend, line, line_chart, rect, row_label, short, svg, time_ticks, x_axis,
)

REPORT_FILE = "report.html"
MAX_TASK_BARS = 6000  # beyond this the timeline draws every failed task and an even sample of the rest
MAX_LANES = 16  # concurrent tasks of one stage drawn in at most this many rows
THROUGHPUT_BUCKETS = 60


def write_report(run_dir: str, out: str | None = None) -> str:
    """Write the HTML report of the run recorded in `run_dir`; returns the file's path."""
    data = load_run(run_dir)
    path = out or os.path.join(run_dir, REPORT_FILE)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    page = render(data)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(path + ".tmp", path)
    return path


# ---------------------------------------------------------------- reading a run


@dataclass
class Task:
    stage: int
    block: str
    attempt: int
    start: float  # seconds since the run started
    end: float | None
    status: str  # "ok" | "failed" | "skipped" | "running" (no end event: the run was cut short)
    start_event: dict = field(default_factory=dict)
    end_event: dict = field(default_factory=dict)


@dataclass
class RunData:
    run_dir: str
    run: dict
    events: list[dict]
    t0: float
    duration: float
    stage_names: dict[int, str]
    bad_records: list[dict]  # {"stage", "operator", "exception_type", "message"} per quarantined row

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == kind]

    def at(self, ts: float) -> float:
        return ts - self.t0


def load_run(run_dir: str) -> RunData:
    run_path, events_path = os.path.join(run_dir, RUN_FILE), os.path.join(run_dir, EVENTS_FILE)
    if not os.path.isfile(run_path) and not os.path.isfile(events_path):
        raise SluiceError(f"{run_dir} holds neither {RUN_FILE} nor {EVENTS_FILE}, so there is nothing to report. "
                          f"Pass the id of a recorded run (`sluice runs` lists them).")
    run: dict = {}
    if os.path.isfile(run_path):
        with open(run_path) as f:
            run = json.load(f)
    events = read_events(events_path) if os.path.isfile(events_path) else []
    starts = [e["ts"] for e in events if e.get("event") == "run_start"]
    ends = [e["ts"] for e in events if e.get("event") == "run_end"]
    stamps = [e["ts"] for e in events if isinstance(e.get("ts"), (int, float))]
    t0 = starts[0] if starts else run.get("started_at") or (min(stamps) if stamps else 0.0)
    t_end = ends[-1] if ends else (t0 + run["wall_s"] if run.get("wall_s") else max(stamps, default=t0))
    names = {int(s["stage_id"]): s["name"] for s in run.get("stages", [])}
    for e in events:
        if e.get("event") == "stage_start" and e.get("name"):
            names[int(e["stage"])] = e["name"]
    return RunData(run_dir, run, events, t0, max(t_end - t0, max(stamps, default=t0) - t0, 1e-3), names,
                   _read_bad_records(run_dir, run, events))


def _read_bad_records(run_dir: str, run: dict, events: list[dict]) -> list[dict]:
    directory = os.path.join(run_dir, "bad_records")
    if os.path.isdir(directory) and any(name.endswith(".parquet") for _, _, files in os.walk(directory) for name in files):
        import pyarrow.parquet as pq
        table = pq.read_table(directory)
        wanted = [c for c in ("stage", "operator", "exception_type", "message") if c in table.column_names]
        return table.select(wanted).to_pylist()
    rows = []
    for e in events:  # no dead-letter files (moved, or not written yet): the events still count them
        if e.get("event") == "bad_records":
            rows += [{"stage": e.get("stage"), "operator": e.get("operator")}] * int(e.get("count", 0))
    return rows


def tasks_of(data: RunData) -> list[Task]:
    """Tasks from their start and end events; a task with no start event starts `wall_s` before its end."""
    tasks: dict[tuple, Task] = {}
    for e in data.events:
        kind = e.get("event")
        if kind not in ("task_start", "task_end"):
            continue
        key = (int(e.get("stage", -1)), str(e.get("block")), int(e.get("attempt") or 1))
        if kind == "task_start":
            tasks[key] = Task(key[0], key[1], key[2], data.at(e["ts"]), None, "running", start_event=e)
        else:
            end = data.at(e["ts"])
            task = tasks.get(key) or Task(key[0], key[1], key[2], end - float(e.get("wall_s") or 0), None, "")
            task.end, task.status, task.end_event = end, str(e.get("status", "ok")), e
            tasks[key] = task
    return sorted(tasks.values(), key=lambda t: (t.stage, t.start))


# ---------------------------------------------------------------- charts


@dataclass
class Chart:
    name: str
    title: str
    body: str  # SVG, or "" when there is no data
    points: int
    caption: str = ""
    empty: str = ""  # why there is nothing to draw
    extra: str = ""  # HTML under the chart


def chart_timeline(data: RunData) -> Chart:
    tasks = tasks_of(data)
    spans = _stage_spans(data)
    stages = sorted(set(spans) | {t.stage for t in tasks})
    if not stages:
        return Chart("timeline", "Timeline of stages and tasks", "", 0,
                     empty="no task or stage events in this run (events.jsonl is missing or empty)")
    shown, note = tasks, ""
    if len(tasks) > MAX_TASK_BARS:
        failed = [t for t in tasks if t.status == "failed"]
        stride = len(tasks) / (MAX_TASK_BARS - len(failed))
        sampled = {id(tasks[int(i * stride)]) for i in range(MAX_TASK_BARS - len(failed))}
        shown = [t for t in tasks if t.status == "failed" or id(t) in sampled]
        note = f" Showing {len(shown):,} of {len(tasks):,} tasks (every failed one)."
    seconds, fmt_time = time_ticks(data.duration)
    x = Scale(0, seconds[-1], LEFT, WIDTH - RIGHT)
    out = legend([("task (colour per stage)", color(0), "bar"), ("failed task", FAILED, "bar"),
                  ("skipped (done earlier)", MUTED, "bar"), ("stage start to end", "#e8ebef", "bar")], LEFT, TOP + 8)
    y, body, marks = TOP + 24, [], 0
    for stage in stages:
        lanes = _pack([t for t in shown if t.stage == stage])
        count = max(1, max((lane for _, lane in lanes), default=0) + 1)
        lane_h = 12.0 if count <= 6 else max(4.0, 72.0 / count)
        height = max(count * lane_h + 10, 34)
        name = data.stage_names.get(stage, f"stage {stage}")
        body.append(row_label(LEFT - 10, y + height / 2, name))
        if stage in spans:
            start, end = spans[stage]
            body.append(rect(x(start), y, x(end) - x(start), height, "#e8ebef", f"{name}: {start:.2f}s to {end:.2f}s",
                             cls="band" if tasks else "band mark"))  # with no task events, the spans are the data
        for task, lane in lanes:
            end = task.end if task.end is not None else data.duration
            fill = {"failed": FAILED, "skipped": MUTED}.get(task.status, color(stage))
            stroke = ' stroke="#7f1010" stroke-width="1.2"' if task.status == "failed" else ' stroke="#fff" stroke-width="0.8"'
            body.append(rect(x(task.start), y + 5 + lane * lane_h, max(2.0, x(end) - x(task.start)), lane_h - 2, fill,
                             _task_title(task, name), extra=stroke + f' data-status="{esc(task.status)}"'))
            marks += 1
        y += height + 6
        body.append(line(LEFT, y - 3, WIDTH - RIGHT, y - 3))
    out += x_axis(x, seconds, fmt_time, TOP + 24, y, "time since the run started")
    out += body
    failed = sum(t.status == "failed" for t in tasks)
    caption = (f"{len(tasks):,} task attempt(s) in {len(stages)} stage(s) over {fmt_seconds(data.duration)}; "
               + (f"<b class=bad>{failed:,} failed</b>." if failed else "none failed.") + note
               + " Hover a bar for its block, rows, worker and source.")
    return Chart("timeline", "Timeline of stages and tasks", svg(y + AXIS_H, out, "timeline"), marks or len(spans),
                 caption)


def _stage_spans(data: RunData) -> dict[int, tuple[float, float]]:
    starts = {int(e["stage"]): data.at(e["ts"]) for e in data.of("stage_start")}
    ends = {int(e["stage"]): data.at(e["ts"]) for e in data.of("stage_end")}
    return {s: (start, ends.get(s, data.duration)) for s, start in starts.items()}


def _pack(tasks: list[Task]) -> list[tuple[Task, int]]:
    """Give each task the first row free at its start, so concurrent tasks sit on separate rows."""
    free_at: list[float] = []
    placed = []
    for task in sorted(tasks, key=lambda t: t.start):
        end = task.end if task.end is not None else float("inf")
        lane = next((i for i, busy in enumerate(free_at) if busy <= task.start + 1e-6), None)
        if lane is None:
            if len(free_at) < MAX_LANES:
                lane = len(free_at)
                free_at.append(end)
            else:
                lane = min(range(len(free_at)), key=free_at.__getitem__)
        free_at[lane] = max(free_at[lane], end) if free_at[lane] > task.start else end
        placed.append((task, lane))
    return placed


def _task_title(task: Task, stage_name: str) -> str:
    start, end = task.start_event, task.end_event
    parts = [f"{task.block} attempt {task.attempt}: {task.status}", stage_name,
             f"{task.start:.2f}s to {task.end:.2f}s" if task.end is not None else f"from {task.start:.2f}s, no end event"]
    if end.get("rows") is not None:
        parts.append(f"{end['rows']:,} rows, {fmt_bytes(end.get('bytes') or 0)}")
    if start.get("pid"):
        parts.append(f"pid {start['pid']} on {start.get('host', '?')}, thread {start.get('thread', '?')}")
    for source in (start.get("sources") or [])[:3]:
        rows = "" if source.get("first_row") is None else f" rows {source['first_row']:,}-{source.get('end_row'):,}"
        parts.append(f"source {source.get('file')}{rows}")
    if start.get("partitions"):
        parts.append(f"partitions {start['partitions']}")
    if end.get("error"):
        parts.append(f"error {end['error']}")
    return "\n".join(parts)


def chart_bytes(data: RunData) -> Chart:
    by_stage: dict[int, list[dict]] = defaultdict(list)
    for op in data.run.get("operators", []):
        by_stage[int(op["stage_id"])].append(op)
    if not by_stage:
        return Chart("bytes", "Bytes per stage", "", 0, empty="no operator figures in this run (run.json is missing)")
    rows = []
    for stage in sorted(by_stage):
        ops = by_stage[stage]
        first, last = ops[0], ops[-1]
        into = first["bytes_in"] or first["bytes_out"]  # a source stage's first operator reads rather than receives
        detail = "\n".join(f"{o['name']}: {fmt_bytes(o['bytes_in'])} in, {fmt_bytes(o['bytes_out'])} out, "
                           f"{o['rows_in']:,} -> {o['rows_out']:,} rows, {o['wall_s']:.2f}s" for o in ops)
        rows.append(BarRow(data.stage_names.get(stage, f"stage {stage}"),
                           [Bar(into, "#4e79a7", f"into stage {stage}: {fmt_bytes(into)}\n{detail}"),
                            Bar(last["bytes_out"], "#f28e2b", f"out of stage {stage}: {fmt_bytes(last['bytes_out'])}\n{detail}")],
                           note=f"{first['rows_in'] or first['rows_out']:,} -> {last['rows_out']:,} rows"))
    body, marks = hbar_chart(rows, fmt_bytes, "bytes", "bytes per stage")
    run = data.run
    totals = [f"{label} {fmt_bytes(run[key])}" for key, label in (
        ("input_bytes", "input read"), ("shuffle_bytes_written", "shuffle written"),
        ("shuffle_bytes_read", "shuffle read"), ("output_bytes", "output written"), ("spilled_bytes", "spilled"))
        if run.get(key)]
    caption = ("Blue: bytes into the stage (read, for a source stage); orange: bytes out of its last operator. "
               + ("Totals: " + ", ".join(totals) + "." if totals else ""))
    return Chart("bytes", "Bytes per stage", body, marks, caption)


def chart_skew(data: RunData) -> Chart:
    exchanges: dict[int, dict] = {}
    for ex in data.run.get("exchanges", []):
        exchanges.setdefault(int(ex["stage"]), {}).update(sizes=ex.get("partition_bytes") or [],
                                                          rows=ex.get("partition_rows") or [],
                                                          decisions=ex.get("decisions") or [])
    for e in data.of("exchange"):
        ex = exchanges.setdefault(int(e["stage"]), {})
        ex.setdefault("sizes", e.get("partitions") or [])
        ex["decisions"] = ex.get("decisions") or e.get("decisions") or []
    exchanges = {s: ex for s, ex in exchanges.items() if ex.get("sizes")}
    if not exchanges:
        return Chart("skew", "Partition sizes of each exchange (skew)", "", 0, empty="no exchanges in this run")
    parts, marks = [], 0
    for stage in sorted(exchanges):
        ex = exchanges[stage]
        sizes, rows = list(ex["sizes"]), list(ex.get("rows") or [])
        order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
        if len(order) > 600:  # one bar per quantile, not per partition
            order = [order[int(i * len(order) / 600)] for i in range(600)]
        ranked = sorted(sizes)
        median = ranked[len(ranked) // 2]
        titles = [f"partition {i}: {fmt_bytes(sizes[i])}" + (f", {rows[i]:,} rows" if i < len(rows) else "")
                  for i in order]
        body, n = column_chart([sizes[i] for i in order], titles, fmt_bytes, 90, f"exchange into stage {stage}",
                               reference=median, reference_label=f"median {fmt_bytes(median)}")
        marks += n
        ratio = f"{max(sizes) / median:.1f}x the median" if median else "over half the partitions are empty"
        empty = sum(1 for s in sizes if not s)
        decisions = "".join(f"<li>{esc(d)}</li>" for d in ex.get("decisions") or [])
        parts.append(f"<h3>exchange into {esc(data.stage_names.get(stage, f'stage {stage}'))}</h3>"
                     f"<p class=caption>{len(sizes):,} partitions, {fmt_bytes(sum(sizes))} in all, sorted largest "
                     f"first; the largest is {fmt_bytes(max(sizes))} ({ratio}); {empty:,} empty.</p>{body}"
                     + (f"<ul class=decisions>{decisions}</ul>" if decisions else ""))
    return Chart("skew", "Partition sizes of each exchange (skew)", "".join(parts), marks,
                 "One bar per partition; a bar far above the dashed median line is a skewed partition.")


def chart_memory(data: RunData) -> Chart:
    samples = [e for e in data.of("sample") if e.get("rss_bytes") is not None]
    if not samples:
        return Chart("memory", "Memory over time against the budget", "", 0,
                     empty="no memory samples in this run (events.jsonl is missing or has no sample events)")
    series = [Series("rss (process and workers)", [(data.at(e["ts"]), e["rss_bytes"]) for e in samples], "#4e79a7",
                     fill=True),
              Series("reserved by admitted tasks", [(data.at(e["ts"]), e.get("reserved_bytes") or 0) for e in samples],
                     "#59a14f")]
    budget = max(e.get("budget_bytes") or 0 for e in samples)
    used = max(max(e["rss_bytes"], e.get("reserved_bytes") or 0) for e in samples)
    if budget > 3 * used:  # drawn to scale, the budget would flatten the lines that matter onto the axis
        series.append(Series(f"memory budget {fmt_bytes(budget)}, far above: not drawn to scale", [], FAILED, dash=True))
    else:
        series.append(Series("memory budget", [(data.at(e["ts"]), e.get("budget_bytes") or 0) for e in samples],
                             FAILED, dash=True))
    body, _ = line_chart(series, data.duration, fmt_bytes, "bytes", "memory over time")
    peak = max(samples, key=lambda e: e["rss_bytes"])
    over = f" (<b class=bad>{peak['rss_bytes'] / budget:.0%} of the budget</b>)" if budget and peak["rss_bytes"] > budget \
        else (f" ({peak['rss_bytes'] / budget:.0%} of the budget)" if budget else "")
    caption = (f"{len(samples):,} samples. Peak rss {fmt_bytes(peak['rss_bytes'])} at "
               f"{data.at(peak['ts']):.1f}s{over}; peak reserved "
               f"{fmt_bytes(max(e.get('reserved_bytes') or 0 for e in samples))}.")
    return Chart("memory", "Memory over time against the budget", body, len(samples), caption)


def chart_throughput(data: RunData) -> Chart:
    from_tasks = _rates_from_tasks(data)
    series = sorted(from_tasks + [s for s in _rates_from_samples(data) if s.key not in {t.key for t in from_tasks}],
                    key=lambda s: s.key)  # a stage whose tasks carry no row counts falls back on the samples
    if not series:
        return Chart("throughput", "Throughput over time", "", 0,
                     empty="no finished tasks or progress samples in this run, so no throughput to draw")
    body, drawn = line_chart(series, data.duration, fmt_count, "rows/s", "throughput over time")
    total = sum(int(op["rows_out"]) for op in data.run.get("operators", []) if op["name"].startswith("Scan"))
    caption = "Rows put out per second by each stage, each task's rows spread over its run time" + (
        f"; the scans read {total:,} rows in all, {total / data.duration:,.0f} rows/s on average." if total else ".")
    return Chart("throughput", "Throughput over time", body, drawn, caption)


def _rates_from_tasks(data: RunData, buckets: int = THROUGHPUT_BUCKETS) -> list[Series]:
    """Rows/s per stage in time buckets, each finished task's rows spread evenly over its start..end."""
    width = data.duration / buckets
    rows: dict[int, list[float]] = {}
    for task in tasks_of(data):
        count = task.end_event.get("rows") or 0
        if task.end is None or task.status != "ok" or not count:
            continue
        counts = rows.setdefault(task.stage, [0.0] * buckets)
        start, end = task.start, max(task.end, task.start + 1e-9)
        first, last = int(start / width), min(buckets - 1, int(end / width))
        for i in range(max(0, first), last + 1):
            overlap = min(end, (i + 1) * width) - max(start, i * width)
            counts[i] += count * max(0.0, overlap) / (end - start) if last > first else count
    return [Series(short(data.stage_names.get(stage, f"stage {stage}"), 40),
                   [((i + 0.5) * width, c / width) for i, c in enumerate(rows[stage])], color(stage), key=stage)
            for stage in sorted(rows)]


def _rates_from_samples(data: RunData) -> list[Series]:
    """Rows/s per stage between consecutive samples, for a log without task events."""
    rows: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for e in data.of("sample"):
        for stage, state in (e.get("stages") or {}).items():
            if isinstance(state, dict) and state.get("rows") is not None:
                rows[int(stage)].append((data.at(e["ts"]), float(state["rows"])))
    series = []
    for stage in sorted(rows):
        rates = [((t0 + t1) / 2, max(0.0, (r1 - r0) / (t1 - t0)))
                 for (t0, r0), (t1, r1) in itertools.pairwise(rows[stage]) if t1 > t0]
        if any(r for _, r in rates):
            series.append(Series(short(data.stage_names.get(stage, f"stage {stage}"), 40), rates, color(stage), key=stage))
    return series


def chart_bad_records(data: RunData) -> Chart:
    if not data.bad_records:
        return Chart("bad_records", "Bad records per operator", "", 0, empty="no bad records in this run")
    counts: dict[tuple, int] = defaultdict(int)
    kinds: dict[tuple, dict] = {}
    for record in data.bad_records:
        key = (record.get("stage"), str(record.get("operator")))
        counts[key] += 1
        kind = (key, record.get("exception_type"))
        kinds.setdefault(kind, {"count": 0, "message": record.get("message")})["count"] += 1
    rows = [BarRow(f"stage {stage}: {operator}", [Bar(n, FAILED, f"{n:,} bad records in stage {stage}, {operator}")])
            for (stage, operator), n in sorted(counts.items(), key=lambda kv: -kv[1])]
    body, marks = hbar_chart(rows, fmt_count, "bad records", "bad records per operator", bar_h=20)
    table = "".join(f"<tr><td>stage {esc(k[0][0])}</td><td>{esc(k[0][1])}</td><td>{esc(k[1] or '')}</td>"
                    f"<td class=num>{v['count']:,}</td><td class=msg>{esc(short(str(v['message'] or ''), 160))}</td></tr>"
                    for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["count"]))
    run_id = data.run.get("run_id", os.path.basename(data.run_dir))
    extra = ("<table class=kinds><tr><th>stage</th><th>operator</th><th>exception</th><th>rows</th>"
             f"<th>first message</th></tr>{table}</table>")
    caption = (f"<b class=bad>{len(data.bad_records):,} bad record(s)</b> quarantined to "
               f"<code>{esc(os.path.join(data.run_dir, 'bad_records'))}</code>; <code>sluice bad-records {esc(run_id)}"
               f"</code> lists them, <code>sluice repro {esc(run_id)}</code> rebuilds one as a failing test.")
    return Chart("bad_records", "Bad records per operator", body, marks, caption, extra=extra)


CHARTS = (chart_timeline, chart_bytes, chart_skew, chart_memory, chart_throughput, chart_bad_records)


# ---------------------------------------------------------------- the page


def render(data: RunData) -> str:
    charts = [make(data) for make in CHARTS]
    run = data.run
    run_id = run.get("run_id") or os.path.basename(os.path.normpath(data.run_dir))
    nav = " ".join(f'<a href="#chart-{c.name}">{esc(c.title.split(" (")[0])}</a>' for c in charts)
    sections = "".join(_section(c) for c in charts)
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>sluice run {esc(run_id)}</title>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'><style>{CSS}</style></head><body>"
            f"{_header(data, run_id)}<nav>{nav}</nav>{sections}{_details(data)}"
            f"<footer>Written by <code>sluice report</code> from {esc(data.run_dir)}.</footer>"
            f"<script>{SCRIPT}</script></body></html>")


def _section(chart: Chart) -> str:
    content = chart.body or f'<p class="empty">{esc(chart.empty)}</p>'
    empty = f' data-empty="{esc(chart.empty)}"' if not chart.body else ""
    caption = f"<p class=caption>{chart.caption}</p>" if chart.caption else ""
    return (f'<section class="chart" id="chart-{chart.name}" data-chart="{chart.name}" data-points="{chart.points}"'
            f'{empty}><h2>{esc(chart.title)}</h2>{caption}{content}{chart.extra}</section>')


def _header(data: RunData, run_id: str) -> str:
    run = data.run
    run_end = next(iter(data.of("run_end")[-1:]), {})
    run_start = next(iter(data.of("run_start")), {})
    status = run.get("status") or run_end.get("status") or "unfinished (no run.json)"
    started = run.get("started_at") or run_start.get("ts") or data.t0
    facts = [("status", f"<span class='status status-{esc(status.split()[0])}'>{esc(status)}</span>"),
             ("started", esc(datetime.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S"))),
             ("wall time", esc(f"{run.get('wall_s', run_end.get('wall_s', data.duration)) or 0:.2f} s"))]
    if run_start.get("host"):
        facts.append(("host", esc(f"{run_start['host']} (pid {run_start.get('pid')})")))
    bad = run.get("bad_records", len(data.bad_records))
    facts.append(("bad records", f"<b class=bad>{bad:,}</b>" if bad else "0"))
    facts.append(("retries", f"{run.get('retries', 0):,}"))
    for key, label in (("input_bytes", "input read"), ("shuffle_bytes_written", "shuffle written"),
                       ("shuffle_bytes_read", "shuffle read"), ("output_bytes", "output written"),
                       ("spilled_bytes", "spilled")):
        if run.get(key) is not None:
            facts.append((label, esc(fmt_bytes(run[key]))))
    cost = run.get("cost")
    if isinstance(cost, dict) and isinstance(cost.get("total"), (int, float)):
        facts.append(("estimated cost", esc(f"{cost['total']:.4f}")))
    settings = dict(run.get("settings") or {})
    for key in ("threads", "memory_budget"):
        if run_start.get(key) is not None and key not in settings and f"num_{key}" not in settings:
            settings[key] = run_start[key]
    if isinstance(settings.get("memory_budget"), int):
        settings["memory_budget"] = fmt_bytes(settings["memory_budget"])
    error = run.get("error") or run_end.get("error")
    return (f"<header><h1>sluice run <code>{esc(run_id)}</code></h1>"
            + (f"<p class='error'>{esc(error)}</p>" if error else "")
            + "<dl class=facts>" + "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts) + "</dl>"
            + "<dl class='facts settings'>" + "".join(f"<div><dt>{esc(k)}</dt><dd><code>{esc(v)}</code></dd></div>"
                                                     for k, v in settings.items()) + "</dl></header>")


def _details(data: RunData) -> str:
    run = data.run
    parts = [f"<h2>Summary</h2><pre class=summary>{esc(_summary_text(run))}</pre>" if run else ""]
    if run.get("checks"):
        parts.append("<h2>Data-quality checks</h2><ul class=checks>" + "".join(
            f"<li class='check check-{esc(c['status'])}'><b>{esc(c['status'])}</b> {esc(c['check'])}: "
            f"{esc(c['detail'])}</li>" for c in run["checks"]) + "</ul>")
    if run.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in run["notes"]) + "</ul>")
    if run.get("plan"):
        parts.append(f"<details><summary>Physical plan</summary><pre>{esc(run['plan'])}</pre></details>")
    return f"<section class=details data-chart-free>{''.join(parts)}</section>" if any(parts) else ""


def _summary_text(run: dict) -> str:
    """The run summary as `sluice run` prints it, rebuilt from run.json."""
    if isinstance(run.get("summary"), str):
        return run["summary"]
    from .stats import OperatorStats, RunStats, StageStats

    def build(cls, values: dict):
        names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        return cls(**{k: v for k, v in values.items() if k in names})

    stats = build(RunStats, {k: v for k, v in run.items() if k not in ("operators", "stages", "reduce_tasks", "events",
                                                                         "physical_plan")})
    for op in run.get("operators", []):
        stats.operators[(op["stage_id"], op["name"])] = build(OperatorStats, op)
    for stage in run.get("stages", []):
        stats.stages[stage["stage_id"]] = build(StageStats, stage)
    return str(stats).rstrip()


CSS = """
:root{--ink:#1f2933;--muted:#6b7280;--line:#e5e7eb;--bad:#c81e1e;--card:#fff;--bg:#f5f6f8}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1240px;padding:24px 28px 40px;background:var(--bg);color:var(--ink);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif}
h1{font-size:22px;margin:0 0 12px}h1 code{font-size:20px}
h2{font-size:17px;margin:0 0 6px}h3{font-size:14px;margin:16px 0 2px}
header,section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 16px}
nav{margin:0 0 16px;display:flex;gap:8px;flex-wrap:wrap}
nav a{background:var(--card);border:1px solid var(--line);border-radius:14px;padding:3px 12px;color:#1d4ed8;
 text-decoration:none;font-size:13px}
.facts{display:flex;flex-wrap:wrap;gap:8px 26px;margin:0 0 8px}.facts div{min-width:110px}
dt{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}dd{margin:0;font-weight:600}
.settings dd{font-weight:400}
.status{padding:1px 10px;border-radius:10px;background:#e5e7eb}
.status-succeeded{background:#dcfce7;color:#166534}.status-failed{background:#fee2e2;color:#991b1b}
.error{background:#fee2e2;color:#991b1b;padding:8px 12px;border-radius:6px;white-space:pre-wrap}
.bad{color:var(--bad)}
.check-failed b{color:var(--bad)}.check-warned b{color:#b7791f}.check-passed b{color:#2f855a}
.caption{color:var(--muted);margin:0 0 8px}
.empty{color:var(--muted);font-style:italic;padding:18px 0;margin:0}
svg{display:block;max-width:100%;height:auto}
svg .grid{stroke:#eceef1;stroke-width:1}svg .axis{stroke:#9ca3af;stroke-width:1}
svg .tick{font-size:11px;fill:#6b7280}svg .sub{font-size:11px;fill:#6b7280}svg .lbl{font-size:12px;fill:#1f2933}
svg .value,svg .note{font-size:11px;fill:#4b5563}svg .legend{font-size:12px;fill:#374151}
svg .axis-title{font-size:11px;fill:#6b7280;font-style:italic}
svg .ref{stroke-dasharray:5 4;stroke-width:1.5}
svg .band{opacity:.9}svg .mark:hover{opacity:.75}
table{border-collapse:collapse;margin-top:10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
td.num{text-align:right}td.msg{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
pre{background:#f8fafc;border:1px solid var(--line);border-radius:6px;padding:10px;overflow-x:auto;
 font:12px/1.35 ui-monospace,"DejaVu Sans Mono",monospace}
.decisions{margin:4px 0 0;color:var(--ink)}
footer{color:var(--muted);font-size:12px}
"""

# Marks each chart with what the browser actually laid out, so a headless browser's DOM shows it.
SCRIPT = """
document.querySelectorAll('section.chart').forEach(function(s){
  var marks=0;s.querySelectorAll('.mark').forEach(function(m){var b=m.getBoundingClientRect();
    if(b.width>0||b.height>0)marks++;});
  var svg=s.querySelector('svg');s.setAttribute('data-rendered-marks',marks);
  s.setAttribute('data-rendered-width',svg?Math.round(svg.getBoundingClientRect().width):0);});
document.body.setAttribute('data-report-ready','yes');
"""

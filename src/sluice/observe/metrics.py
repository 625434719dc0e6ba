"""Prometheus metrics while runs go: an opt-in HTTP endpoint fed by each run's event log.

A five-hour job should be watchable from the monitoring a team already has. With
`metrics_port` set (`sluice run --metrics-port 9464`, `sluice.configure(metrics_port=...)` or
SLUICE_METRICS_PORT), the first run of the process starts an HTTP server on
`metrics_host:metrics_port` (127.0.0.1 by default) in a daemon thread, and every run
registers a listener on its `EventLog`. The listener folds events into per-run, per-stage
figures; `GET /metrics` renders them in the Prometheus text exposition format (0.0.4).

The standard library's http.server is enough for one scrape every few seconds, and the
text format is a few lines of code, so there is no prometheus_client dependency.

Every series carries `run_id`; per-stage series add `stage` (the stage id) and `name`. The
last MAX_FINISHED_RUNS finished runs stay visible (with sluice_run_running 0) so a scrape
after a short run still sees its final figures.
"""

from __future__ import annotations

import errno
import http.server
import math
import os
import threading
import time
from dataclasses import dataclass, field

from ..errors import SluiceError
from .stats import HELD_BY_CONSUMER, HELD_BY_MEMORY

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_FINISHED_RUNS = 10
HELD_REASONS = {HELD_BY_MEMORY: "memory", HELD_BY_CONSUMER: "consumer"}  # state text -> `reason` label

# name, type, help; rendered in this order
METRICS = (
    ("sluice_run_info", "gauge", "A run of this process (always 1); labels say its host, pid and status."),
    ("sluice_run_running", "gauge", "1 while the run is going, 0 once it ended."),
    ("sluice_run_start_time_seconds", "gauge", "When the run started, in Unix seconds."),
    ("sluice_run_wall_seconds", "gauge", "Seconds the run has been going, or took."),
    ("sluice_stage_tasks_done", "gauge", "Tasks of the stage finished so far."),
    ("sluice_stage_tasks_total", "gauge", "Tasks the stage will run, where known up front."),
    ("sluice_stage_rows_done", "gauge", "Rows the stage has produced so far."),
    ("sluice_stage_rows_per_second", "gauge", "Rows per second the stage produced between its last two samples."),
    ("sluice_stage_tasks_in_flight", "gauge", "Tasks of the stage submitted and not yet handed on (its queue depth)."),
    ("sluice_stage_held_back", "gauge",
     ("1 while the stage is held back, by reason: memory (waiting for the memory budget), consumer (a slower "
      "consumer applies backpressure), or the engine's own words.")),
    ("sluice_tasks_finished_total", "counter", "Tasks that finished successfully."),
    ("sluice_tasks_failed_total", "counter", "Task attempts that failed."),
    ("sluice_tasks_skipped_total", "counter", "Tasks skipped because an earlier attempt of the run completed them."),
    ("sluice_stage_bytes_out_total", "counter", "Bytes of the blocks the stage's tasks produced."),
    ("sluice_retries_total", "counter", "Task attempts repeated after a transient error."),
    ("sluice_bad_records_total", "counter", "Rows quarantined to the run's dead-letter dataset."),
    ("sluice_rss_bytes", "gauge", "Resident memory of the sluice process and its UDF workers at the last sample."),
    ("sluice_reserved_bytes", "gauge", "Memory reserved by the run's admitted tasks at the last sample."),
    ("sluice_memory_budget_bytes", "gauge", "The run's memory budget."),
)


@dataclass
class _Stage:
    name: str = ""
    tasks_done: int = 0
    tasks_total: int | None = None
    rows: int = 0
    rows_per_s: float = 0.0
    in_flight: int = 0
    state: str = ""
    sampled: tuple[float, int] | None = None  # (ts, rows) of the last sample, for the rate
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    bytes_out: int = 0


@dataclass
class _Run:
    run_id: str
    host: str = ""
    pid: int = 0
    status: str = "running"
    started: float = field(default_factory=time.time)
    ended: float | None = None
    rss: int | None = None
    reserved: int | None = None
    budget: int | None = None
    retries: int = 0
    bad_records: dict[tuple[str, str], int] = field(default_factory=dict)  # (stage, operator) -> rows
    stages: dict[str, _Stage] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    seen: bool = False  # False until its first event: a context that never ran (explain only) shows nothing

    def stage(self, stage_id) -> _Stage:
        key = "" if stage_id is None else str(stage_id)
        if key not in self.stages:
            self.stages[key] = _Stage()
        return self.stages[key]

    def observe(self, event: dict) -> None:
        self.seen = True
        kind = event.get("event")
        ts = float(event.get("ts") or time.time())
        if kind == "run_start":
            self.run_id = str(event.get("run_id") or self.run_id)
            self.host, self.pid, self.started = str(event.get("host", "")), int(event.get("pid") or 0), ts
            if event.get("memory_budget") is not None:
                self.budget = int(event["memory_budget"])
        elif kind == "stage_start":
            stage = self.stage(event.get("stage"))
            stage.name = str(event.get("name") or stage.name)
            if event.get("tasks_total") is not None:
                stage.tasks_total = int(event["tasks_total"])
        elif kind == "task_end":
            stage = self.stage(event.get("stage"))
            status = event.get("status")
            if status == "ok":
                stage.finished += 1
                stage.bytes_out += int(event.get("bytes") or 0)
            elif status == "failed":
                stage.failed += 1
            elif status == "skipped":
                stage.skipped += 1
        elif kind == "sample":
            self._sample(ts, event)
        elif kind == "retry":
            self.retries += 1
        elif kind == "bad_records":
            key = ("" if event.get("stage") is None else str(event["stage"]), str(event.get("operator") or ""))
            self.bad_records[key] = self.bad_records.get(key, 0) + int(event.get("count") or 0)
        elif kind == "stage_end":
            stage = self.stage(event.get("stage"))
            stage.rows_per_s, stage.in_flight, stage.state = 0.0, 0, ""
        elif kind == "run_end":
            self.status, self.ended = str(event.get("status") or "ended"), ts
            for stage in self.stages.values():
                stage.rows_per_s, stage.in_flight, stage.state = 0.0, 0, ""

    def _sample(self, ts: float, event: dict) -> None:
        for key, attribute in (("rss_bytes", "rss"), ("reserved_bytes", "reserved"), ("budget_bytes", "budget")):
            if event.get(key) is not None:
                setattr(self, attribute, int(event[key]))
        for stage_id, figures in (event.get("stages") or {}).items():
            stage = self.stage(stage_id)
            stage.name = str(figures.get("name") or stage.name)
            rows = int(figures.get("rows") or 0)
            if stage.sampled is not None and ts > stage.sampled[0]:
                stage.rows_per_s = max(0.0, (rows - stage.sampled[1]) / (ts - stage.sampled[0]))
            stage.sampled = (ts, rows)
            stage.rows = rows
            stage.tasks_done = int(figures.get("tasks_done") or 0)
            if figures.get("tasks_total") is not None:
                stage.tasks_total = int(figures["tasks_total"])
            stage.in_flight = int(figures.get("in_flight") or 0)
            stage.state = str(figures.get("state") or "")

    def collect(self, add, now: float) -> None:
        run = {"run_id": self.run_id}
        running = self.ended is None
        add("sluice_run_info", {**run, "host": self.host, "pid": str(self.pid), "status": self.status}, 1)
        add("sluice_run_running", run, 1 if running else 0)
        add("sluice_run_start_time_seconds", run, self.started)
        add("sluice_run_wall_seconds", run, (now if running else self.ended) - self.started)
        for stage_id, stage in sorted(self.stages.items(), key=lambda item: _stage_order(item[0])):
            labels = {**run, "stage": stage_id, "name": stage.name}
            add("sluice_stage_tasks_done", labels, stage.tasks_done)
            if stage.tasks_total is not None:
                add("sluice_stage_tasks_total", labels, stage.tasks_total)
            add("sluice_stage_rows_done", labels, stage.rows)
            add("sluice_stage_rows_per_second", labels, stage.rows_per_s)
            add("sluice_stage_tasks_in_flight", labels, stage.in_flight)
            reasons = {reason: 0 for reason in HELD_REASONS.values()}
            if stage.state:
                reasons[HELD_REASONS.get(stage.state, stage.state)] = 1
            for reason, held in reasons.items():
                add("sluice_stage_held_back", {**labels, "reason": reason}, held)
            add("sluice_tasks_finished_total", labels, stage.finished)
            add("sluice_tasks_failed_total", labels, stage.failed)
            add("sluice_tasks_skipped_total", labels, stage.skipped)
            add("sluice_stage_bytes_out_total", labels, stage.bytes_out)
        add("sluice_retries_total", run, self.retries)
        for (stage_id, operator), count in sorted(self.bad_records.items()):
            name = self.stages[stage_id].name if stage_id in self.stages else ""
            add("sluice_bad_records_total", {**run, "stage": stage_id, "name": name, "operator": operator}, count)
        for metric, value in (("sluice_rss_bytes", self.rss), ("sluice_reserved_bytes", self.reserved),
                              ("sluice_memory_budget_bytes", self.budget)):
            if value is not None:
                add(metric, run, value)


def _stage_order(stage_id: str):
    return (0, int(stage_id), "") if stage_id.lstrip("-").isdigit() else (1, 0, stage_id)


class Registry:
    """The figures of this process's runs, folded from their events; rendered on each scrape."""

    def __init__(self):
        self._lock = threading.Lock()
        self._runs: list[_Run] = []

    def listener(self, run_id: str):
        """A new run's listener: pass it to `EventLog.add_listener`."""
        run = _Run(run_id)
        with self._lock:
            finished = [r for r in self._runs if r.ended is not None]
            never_ran = [r for r in self._runs if not r.seen and time.monotonic() - r.created > 60]
            for old in finished[:max(0, len(finished) - MAX_FINISHED_RUNS)] + never_ran:
                self._runs.remove(old)
            self._runs.append(run)

        def observe(event: dict) -> None:
            with self._lock:
                run.observe(event)
        return observe

    def render(self) -> str:
        samples: dict[str, list[tuple[dict, float]]] = {}
        now = time.time()
        with self._lock:
            for run in (r for r in self._runs if r.seen):
                run.collect(lambda name, labels, value: samples.setdefault(name, []).append((labels, value)), now)
        lines = []
        for name, kind, help_text in METRICS:
            lines.append(f"# HELP {name} {_escape_help(help_text)}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples.get(name, ()):
                rendered = ",".join(f'{key}="{_escape_label(str(val))}"' for key, val in labels.items())
                lines.append(f"{name}{{{rendered}}} {_number(value)}")
        return "\n".join(lines) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Handler(http.server.BaseHTTPRequestHandler):
    registry: Registry  # set on the subclass made per server

    def do_GET(self):
        if self.path.split("?", 1)[0] not in ("/metrics", "/metrics/"):
            self._reply(404, "text/plain; charset=utf-8", "sluice serves Prometheus metrics at /metrics\n")
            return
        self._reply(200, CONTENT_TYPE, self.registry.render())

    def _reply(self, code: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # a scrape every few seconds is not worth a log line
        pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_port = False  # a second process must fail to bind, not share the port


class MetricsServer:
    """The HTTP server of one host:port, serving one registry from a daemon thread."""

    def __init__(self, host: str, port: int):
        self.registry = Registry()
        handler = type("Handler", (_Handler,), {"registry": self.registry})
        try:
            self._httpd = _HTTPServer((host, port), handler)
        except (OSError, OverflowError) as exc:
            if getattr(exc, "errno", None) == errno.EADDRINUSE:
                raise SluiceError(
                    f"Cannot serve Prometheus metrics on {host}:{port}: port {port} is already in use. Pick a free "
                    f"port with `sluice run --metrics-port N`, sluice.configure(metrics_port=N) or "
                    f"SLUICE_METRICS_PORT, or unset it to run without the metrics endpoint.") from None
            raise SluiceError(f"Cannot serve Prometheus metrics on {host}:{port}: {exc}. Check metrics_host and "
                              f"metrics_port (or --metrics-host / --metrics-port).") from None
        self.host, self.port = host, self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"sluice-metrics-{self.port}",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


_servers: dict[tuple[str, int], MetricsServer] = {}
_servers_lock = threading.Lock()


def serve(host: str, port: int) -> MetricsServer:
    """The metrics server on host:port, started on first use; later runs of the process reuse it."""
    with _servers_lock:
        server = _servers.get((host, port))
        if server is None:
            server = _servers[(host, port)] = MetricsServer(host, port)
        return server


def watch(events, config) -> MetricsServer:
    """Serve `config.metrics_port` and feed it this run's events (called by RunContext at run start)."""
    server = serve(config.metrics_host or "127.0.0.1", int(config.metrics_port))
    run_id = os.path.basename(os.path.dirname(events.path)) if events.path else "unknown"
    events.add_listener(server.registry.listener(run_id))
    return server

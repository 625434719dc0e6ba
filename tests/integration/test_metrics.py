"""The Prometheus endpoint: figures folded from a run's events, served as valid text exposition while the run goes.

The first tests feed the listener synthetic events; the last scrapes /metrics during a real run whose UDF lets
blocks through only when the test says so, and sees the stage's rows advance scrape after scrape.
"""

from __future__ import annotations

import re
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import replace

import pyarrow.compute as pc
import pytest

import sluice as sl
from sluice import config as sluice_config
from sluice.errors import SluiceError
from sluice.observe import metrics
from sluice.observe.events import EventLog
from sluice.observe.stats import HELD_BY_CONSUMER, HELD_BY_MEMORY

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse(text: str) -> dict[str, list[tuple[dict, float]]]:
    """Parse Prometheus text exposition strictly: every sample's metric declared by # HELP and # TYPE first."""
    assert text.endswith("\n")
    helped, typed, samples = set(), {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "untyped"), line
            typed[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, label_text, value = match.groups()
        assert name in helped and name in typed, f"{name} has no # HELP / # TYPE before it"
        labels, position = {}, 0
        while label_text and position < len(label_text):
            label = _LABEL.match(label_text, position)
            assert label, f"bad labels in {line!r}"
            labels[label.group(1)] = label.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            position = label.end()
        number = float(value)  # NaN, +Inf and -Inf parse too
        if typed[name] == "counter":
            assert name.endswith("_total") and number >= 0, line
        samples.setdefault(name, []).append((labels, number))
    return samples


def value(samples, metric: str, /, **labels) -> float:
    found = [v for got, v in samples.get(metric, ()) if all(got.get(k) == str(w) for k, w in labels.items())]
    assert len(found) == 1, f"{metric}{labels}: found {found} in {samples.get(metric)}"
    return found[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def feed(registry: metrics.Registry, run_id: str = "run-1"):
    observe = registry.listener(run_id)
    t = 1000.0

    def emit(event, at, **fields):
        observe({"ts": t + at, "event": event, **fields})
    return emit


def test_events_become_run_and_stage_figures():
    registry = metrics.Registry()
    emit = feed(registry)
    emit("run_start", 0, run_id="run-1", pid=42, host="box", threads=2, memory_budget=1000, resumed=False)
    emit("stage_start", 0.1, stage=0, name="Scan -> Filter", tasks_total=4)
    emit("task_end", 0.2, stage=0, block="s0-t0", attempt=1, status="ok", rows=10, bytes=800, wall_s=0.1)
    emit("task_end", 0.3, stage=0, block="s0-t1", attempt=1, status="failed", wall_s=0.1, error="ValueError: x")
    emit("task_end", 0.3, stage=0, block="s0-t2", attempt=1, status="ok", rows=5, bytes=200, wall_s=0.1)
    emit("retry", 0.3, stage=0, block="s0-t1", error="OSError: flaky")
    emit("bad_records", 0.4, stage=0, operator="MapBatches", block="s0-t2", count=3)
    stage = {"name": "Scan -> Filter", "rows": 100, "tasks_done": 1, "tasks_total": 4, "in_flight": 3,
             "state": HELD_BY_MEMORY}
    emit("sample", 0.5, rss_bytes=700, reserved_bytes=300, budget_bytes=1000, stages={0: stage})
    emit("sample", 2.5, rss_bytes=750, reserved_bytes=350, budget_bytes=1000,
         stages={0: {**stage, "rows": 500, "tasks_done": 2, "in_flight": 2, "state": ""}})
    samples = parse(registry.render())

    assert value(samples, "sluice_run_info", run_id="run-1", host="box", pid=42, status="running") == 1
    assert value(samples, "sluice_run_running", run_id="run-1") == 1
    assert value(samples, "sluice_run_start_time_seconds", run_id="run-1") == 1000.0
    at = {"run_id": "run-1", "stage": 0, "name": "Scan -> Filter"}
    assert value(samples, "sluice_stage_rows_done", **at) == 500
    assert value(samples, "sluice_stage_rows_per_second", **at) == pytest.approx((500 - 100) / 2.0)
    assert value(samples, "sluice_stage_tasks_done", **at) == 2
    assert value(samples, "sluice_stage_tasks_total", **at) == 4
    assert value(samples, "sluice_stage_tasks_in_flight", **at) == 2
    assert value(samples, "sluice_stage_held_back", **at, reason="memory") == 0
    assert value(samples, "sluice_tasks_finished_total", **at) == 2
    assert value(samples, "sluice_tasks_failed_total", **at) == 1
    assert value(samples, "sluice_stage_bytes_out_total", **at) == 1000
    assert value(samples, "sluice_retries_total", run_id="run-1") == 1
    assert value(samples, "sluice_bad_records_total", **at, operator="MapBatches") == 3
    assert value(samples, "sluice_rss_bytes", run_id="run-1") == 750
    assert value(samples, "sluice_reserved_bytes", run_id="run-1") == 350
    assert value(samples, "sluice_memory_budget_bytes", run_id="run-1") == 1000

    emit("run_end", 12.0, status="succeeded", wall_s=12.0, error=None)
    samples = parse(registry.render())
    assert value(samples, "sluice_run_running", run_id="run-1") == 0
    assert value(samples, "sluice_run_wall_seconds", run_id="run-1") == pytest.approx(12.0)
    assert value(samples, "sluice_run_info", run_id="run-1", status="succeeded") == 1
    assert value(samples, "sluice_stage_rows_per_second", **at) == 0


@pytest.mark.parametrize("state, reason", [(HELD_BY_MEMORY, "memory"), (HELD_BY_CONSUMER, "consumer"),
                                           ("waiting for a \"lock\"\n", "waiting for a \"lock\"\n")])
def test_held_back_says_why(state, reason):
    registry = metrics.Registry()
    emit = feed(registry)
    emit("sample", 1, rss_bytes=1, reserved_bytes=0, budget_bytes=1,
         stages={"3": {"name": 'Stream -> MapBatches "x\\y"', "rows": 0, "tasks_done": 0, "tasks_total": None,
                       "in_flight": 4, "state": state}})
    samples = parse(registry.render())
    held = {labels["reason"]: v for labels, v in samples["sluice_stage_held_back"]}
    assert held[reason] == 1 and sum(held.values()) == 1
    assert {labels["name"] for labels, _ in samples["sluice_stage_held_back"]} == {'Stream -> MapBatches "x\\y"'}
    assert "sluice_stage_tasks_total" not in samples  # not known up front: no made-up figure


def test_a_run_without_events_shows_nothing_and_old_runs_are_dropped():
    registry = metrics.Registry()
    registry.listener("never-ran")
    for number in range(metrics.MAX_FINISHED_RUNS + 3):
        emit = feed(registry, f"run-{number}")
        emit("run_start", 0, run_id=f"run-{number}", pid=1, host="h")
        emit("run_end", 1, status="succeeded")
    feed(registry, "latest")("run_start", 0, run_id="latest", pid=1, host="h")
    runs = {labels["run_id"] for labels, _ in parse(registry.render())["sluice_run_running"]}
    assert "never-ran" not in runs and "latest" in runs
    assert len(runs) == metrics.MAX_FINISHED_RUNS + 1


def test_the_endpoint_serves_every_run_of_the_process_on_one_port(tmp_path):
    port = free_port()
    config = replace(sluice_config.current(), metrics_port=port)
    first, second = EventLog(str(tmp_path / "run-a" / "events.jsonl")), EventLog(str(tmp_path / "run-b" / "events.jsonl"))
    server = metrics.watch(first, config)
    try:
        assert metrics.watch(second, config) is server
        first.emit("run_start", run_id="run-a", pid=1, host="h")
        second.emit("stage_start", stage=0, name="Scan", tasks_total=1)  # run id from its directory's name
        samples = parse(scrape(f"http://127.0.0.1:{port}/metrics"))
        assert {labels["run_id"] for labels, _ in samples["sluice_run_running"]} == {"run-a", "run-b"}
        with pytest.raises(urllib.error.HTTPError) as missing:
            scrape(f"http://127.0.0.1:{port}/nothing")
        assert missing.value.code == 404
    finally:
        first.close()
        second.close()
        server.close()
        metrics._servers.pop(("127.0.0.1", port), None)


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SluiceError, match=rf"127\.0\.0\.1:{port}.*port {port} is already in use.*--metrics-port"):
            metrics.serve("127.0.0.1", port)
    assert ("127.0.0.1", port) not in metrics._servers


BLOCK_ROWS = 20_000
BLOCKS = 20


def test_scraping_during_a_run_sees_progress_advance(runner):
    """The UDF lets block i through only once the test has released i + 1 blocks, so progress is driven by the
    test, not by timing; after each release the scrape must show more rows done than the scrape before."""
    if runner != "local":
        pytest.skip("the UDF waits on a condition variable of this process; on Ray it runs in a worker")
    port = free_port()
    sl.configure(metrics_port=port, num_threads=2)
    released = 0
    gate = threading.Condition()

    def gated(batch):
        if batch.num_rows == 0:  # map_batches learns the output schema from an empty batch
            return batch
        block = pc.min(batch["id"]).as_py() // BLOCK_ROWS
        with gate:
            gate.wait_for(lambda: released > block, timeout=120)
        return batch

    result = {}

    def run():
        try:
            ds = sl.range(BLOCK_ROWS * BLOCKS).map_batches(gated, compute="threads", batch_size=BLOCK_ROWS)
            result["rows"] = ds.to_arrow().num_rows
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            result["error"] = exc

    def release(n):
        nonlocal released
        with gate:
            released = n
            gate.notify_all()

    def rows_done(samples):
        stages = [(labels, v) for labels, v in samples.get("sluice_stage_rows_done", ()) if "MapBatches" in labels["name"]]
        return stages[0][1] if stages else None

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/metrics"
    seen, text = [], ""
    try:
        for step in (1, 2, 3, 4):
            release(step * 3)
            for _ in range(600):  # up to a minute, far more than needed
                try:
                    text = scrape(url)
                except (urllib.error.URLError, ConnectionError):
                    text = ""  # the server starts with the run
                samples = parse(text) if text else {}
                done = rows_done(samples)
                if done is not None and (not seen or done > seen[-1]):
                    assert value(samples, "sluice_run_running", run_id=_run_id(samples)) == 1
                    seen.append(done)
                    break
                assert thread.is_alive(), result
                threading.Event().wait(0.1)
            else:
                pytest.fail(f"rows done did not advance past {seen} after releasing {step * 3} blocks:\n{text}")
        assert seen == sorted(set(seen)) and len(seen) == 4
        assert seen[-1] < BLOCK_ROWS * BLOCKS
    finally:
        release(BLOCKS)
        thread.join(timeout=120)
    assert result.get("rows") == BLOCK_ROWS * BLOCKS, result
    samples = parse(scrape(url))  # after the run: its final figures, and no longer running
    run_id = _run_id(samples)
    assert value(samples, "sluice_run_running", run_id=run_id) == 0
    assert rows_done(samples) == BLOCK_ROWS * BLOCKS


def _run_id(samples) -> str:
    running = samples["sluice_run_running"]
    return running[-1][0]["run_id"]

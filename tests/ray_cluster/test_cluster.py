"""The Ray runner on a three-node cluster simulated on this machine (`ray.cluster_utils.Cluster`).

Each node has one CPU and a 75 MiB object store, so a shuffle join of 4M rows (eight Parquet
files) spills objects to disk. The pipeline (a shuffle join, then an aggregation) runs twice on the same cluster in
a fresh process (so it cannot meet the Ray instance other tests share): once undisturbed, and
once with a worker node removed while the join's map side is running (a map task on that node
waits until the node is gone). Both results must equal DuckDB's; the second shows that Ray
re-runs the lost tasks and rebuilds the lost exchange pieces from their lineage. Then two
pipelines start at once, each with an actor pool of more than half the cluster's CPUs: the
placement groups grant one pool whole while the other waits, so neither deadlocks half-started.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import textwrap

import duckdb
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROWS = 4_000_000
KEYS = 50_000

SCRIPT = textwrap.dedent("""
    import json, os, sys, threading, time
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
    from ray.cluster_utils import Cluster
    import sluice as sl
    from sluice import col

    out, rows, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    lake = os.path.join(out, "facts")
    os.makedirs(lake)
    for i, first in enumerate(range(0, rows, rows // 8)):  # eight files: eight map tasks at least
        ids = np.arange(first, min(rows, first + rows // 8), dtype=np.int64)
        pq.write_table(pa.table({"id": ids, "k": ids % keys, "v": ids % 1000, "w": ids * 3}),
                       os.path.join(lake, f"part-{i}.parquet"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 75 << 20})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=75 << 20) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    sl.configure(runner="ray", ray_address=cluster.address, num_threads=3)
    head = ray.get_runtime_context().get_node_id()
    marker = os.path.join(out, "victim")

    def pipeline(trap):
        def stall_one_task_on_a_worker_node(batch):
            # the first map task that runs on a worker node names its node, then waits to be killed with it
            node = ray.get_runtime_context().get_node_id()
            if trap and node != head:
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return batch
                os.write(fd, node.encode())
                os.close(fd)
                time.sleep(60)
            return batch

        facts = sl.read_parquet(lake).map_batches(stall_one_task_on_a_worker_node, compute="threads")
        dims = sl.range(keys).select(k=col("id"), g=col("id") % 97)
        return facts.join(dims, on="k", strategy="shuffle").group_by("g").agg(
            n=sl.count(), s=col("v").sum(), m=col("w").max())

    def kill_the_victim():
        while not os.path.exists(marker) or not open(marker).read():
            time.sleep(0.05)
        victim = open(marker).read()
        for node in workers:
            if node.node_id == victim:
                cluster.remove_node(node, allow_graceful=False)
                return

    first = pipeline(trap=False)
    pq.write_table(first.to_arrow(), os.path.join(out, "plain.parquet"))
    from ray._private.internal_api import memory_summary
    spilled = [line for line in memory_summary(address=cluster.address, stats_only=True).splitlines()
               if line.strip().startswith("Spilled")]

    killer = threading.Thread(target=kill_the_victim, daemon=True)
    killer.start()
    second = pipeline(trap=True)
    pq.write_table(second.to_arrow(), os.path.join(out, "killed.parquet"))
    killer.join(timeout=5)
    deadline = time.time() + 120  # the job can finish before the cluster's health checks declare the node dead
    while sum(1 for n in ray.nodes() if n["Alive"]) > 2 and time.time() < deadline:
        time.sleep(0.2)
    alive = sum(1 for n in ray.nodes() if n["Alive"])

    # Gang scheduling: a node with 2 CPUs replaces the lost one (4 CPUs); two pipelines at once, each
    # with a pool of 3 actors (more than half the cluster). Each pool is granted whole or not at all.
    cluster.add_node(num_cpus=2, object_store_memory=75 << 20)
    cluster.wait_for_nodes()
    log = os.path.join(out, "actors")
    os.makedirs(log)

    class Model:
        def __init__(self, pipeline):
            self.pipeline = pipeline
            self.mark("init")

        def mark(self, what):
            open(os.path.join(log, f"{self.pipeline}-{what}-{os.getpid()}-{time.time()!r}"), "w").close()

        def __call__(self, batch):
            time.sleep(0.2)
            return batch

        def close(self):
            self.mark("close")

    gangs = {}

    def gang(name):
        pieces = [pa.table({"x": np.arange(i * 100, (i + 1) * 100)}) for i in range(12)]
        ds = sl.from_arrow(pieces[0]).union(*[sl.from_arrow(p) for p in pieces[1:]]).map_batches(
            Model, fn_constructor_args=(name,), concurrency=3)
        gangs[name] = ds.to_arrow().num_rows

    threads = [threading.Thread(target=gang, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    print(json.dumps({"spilled": spilled, "killed": not killer.is_alive() and os.path.exists(marker),
                      "nodes_alive": alive, "notes": first.stats().notes, "gangs": gangs,
                      "actors": sorted(os.listdir(log))}))
    ray.shutdown()
    cluster.shutdown()
""")


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """The script's output directory and report, made once per session: when xdist gives this module's
    tests to two workers, the second waits for the first's run (under a lock) instead of running it again."""
    shared = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: its base is below the session's directory
        shared = shared.parent
    out, done = shared / "ray-cluster", shared / "ray-cluster.json"
    with open(shared / "ray-cluster.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            out.mkdir()
            result = subprocess.run([sys.executable, "-c", SCRIPT, str(out), str(ROWS), str(KEYS)],
                                    capture_output=True, text=True, timeout=400, check=False)
            failed = result.returncode != 0
            done.write_text(json.dumps({"error": result.stderr[-4000:]} if failed else
                                       json.loads(result.stdout.strip().splitlines()[-1])))
    report = json.loads(done.read_text())
    assert "error" not in report, report.get("error")
    return out, report


@pytest.fixture(scope="module")
def expected():
    con = duckdb.connect()
    return con.sql(f"""
        SELECT g, count(*) AS n, sum(v) AS s, max(w) AS m
        FROM (SELECT range AS id, range % {KEYS} AS k, range % 1000 AS v, range * 3 AS w FROM range({ROWS})) f
        JOIN (SELECT range AS k, range % 97 AS g FROM range({KEYS})) d USING (k)
        GROUP BY g ORDER BY g""").fetchall()


def _rows(path) -> list[tuple]:
    table = pq.read_table(path).sort_by("g")
    return list(zip(*(table[c].to_pylist() for c in ("g", "n", "s", "m"))))


def test_join_then_aggregate_on_three_nodes_equals_duckdb_and_spills(runs, expected):
    out, report = runs
    assert _rows(out / "plain.parquet") == [tuple(int(v) for v in row) for row in expected]
    spilled = report["spilled"]
    assert spilled and not spilled[0].startswith("Spilled 0 MiB"), spilled


def test_a_worker_node_killed_during_the_exchange_does_not_change_the_result(runs, expected):
    out, report = runs
    assert report["killed"] and report["nodes_alive"] == 2, report
    assert _rows(out / "killed.parquet") == [tuple(int(v) for v in row) for row in expected]


def test_two_pools_that_each_need_most_of_the_cluster_run_one_after_the_other(runs):
    _, report = runs
    assert report["gangs"] == {"a": 1200, "b": 1200}, report  # neither deadlocked
    times: dict[str, dict[str, list[float]]] = {}
    for name in report["actors"]:
        pipeline, what, _, at = name.split("-", 3)
        times.setdefault(pipeline, {}).setdefault(what, []).append(float(at))
    assert all(len(t["init"]) == 3 and len(t["close"]) == 3 for t in times.values()), times
    first, second = sorted(times.values(), key=lambda t: min(t["init"]))
    assert max(first["close"]) <= min(second["init"])  # no actor of the second started before the first was done

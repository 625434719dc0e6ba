"""The ``ray`` suite: sluice on a Ray cluster against Ray Data on the same cluster (issue 7).

Every engine process starts its own Ray cluster before the clock, simulated on this machine
with ``ray.cluster_utils.Cluster`` (``bench/engines/ray_start.py``, shape from
``ENVIRONMENT``): ``NODES`` nodes sharing the ``--threads`` CPUs equally (2 threads: two
nodes of one CPU), each with an object store of ``OBJECT_STORE_MIB``.  Ray Data runs in its
own virtualenv, whose pinned Ray may differ from sluice's: each process has its own cluster,
so that does not matter.  sluice runs the very functions of the ``sluice`` engine with
``runner="ray"`` and the cluster's address (``sluice-ray``, ``bench/engines/sluice_ray.py``).

Workloads (the other suites' queries, same names, same SQL and same answers):

- ``join_broadcast_write``: the seeds suite's fact x dimension join + group-by: events (10M
  rows) x users (100k) on user_id -> group by (country, day) -> count, sum(amount) ->
  Parquet, read back (``seeds.SQL``; reference DuckDB).  sluice broadcasts users (one
  ``ray.put``); Ray Data has no broadcast join: ``ray-data`` is its ``Dataset.join``
  (hash shuffle of both sides), ``ray-data-broadcast`` a broadcast join written by hand in
  ``map_batches`` (see ``engines/ray_data.py``), the strongest Ray Data a user could write.
- ``per_row_score``: the udf suite's pure-Python function once per row, over the first
  ``UDF_PARTS`` of the udf suite's 8 files (2.5M rows each; reference: the ``raw`` loop).

Data: the seeds and udf suites' generated tables, hard-linked into ``bench/data/ray/``
(``link_data``: every engine reads the same files through one data directory; rebuilt on
every run, so it never goes stale when those suites regenerate).

Layout ``workload``: a cluster is long-lived, so one process per (engine, workload) starts
it, runs the checked warm-up and then the timed runs on the warm cluster.  The summary
gives sluice's speed-up over Ray Data on each workload (targets: >= 3x on the join +
aggregate, >= 1x on the UDF).  Stdlib-only.
"""
import os
import shutil

from bench.suites import seeds, udf

ENGINES = ("sluice-ray", "ray-data", "ray-data-broadcast")
REFERENCE = "duckdb"
REFERENCES = {"per_row_score": "raw"}          # per workload; the rest use REFERENCE
ENGINE_WORKLOADS = {"ray-data-broadcast": ("join_broadcast_write",)}
PROCESS_PER = "workload"
TIMEOUT = 900.0

NODES = 2
OBJECT_STORE_MIB = 1024
ENVIRONMENT = {"BENCH_RAY_NODES": str(NODES), "BENCH_RAY_OBJECT_STORE_MIB": str(OBJECT_STORE_MIB)}
UDF_PARTS = 8
TARGETS = {"join_broadcast_write": 3.0, "per_row_score": 1.0}   # sluice-ray's speed-up over ray-data

_ROWS_PER_PART = udf.DATA["rows"] // udf.DATA["parts"]
WORKLOADS = {
    "join_broadcast_write": seeds.WORKLOADS["join_broadcast_write"],
    "per_row_score": f"pure-Python score(x, a, b) per row over {UDF_PARTS * _ROWS_PER_PART / 1e6:g}M rows",
}
DATA_NOTE = (f"A Ray cluster of {NODES} nodes simulated in each engine's process (the threads split "
             f"between them, {OBJECT_STORE_MIB} MiB object store each); seeds data (events "
             f"{seeds.DATA['events'] / 1e6:g}M rows, users {seeds.DATA['users'] / 1e3:g}k) and the "
             f"udf suite's rows ({UDF_PARTS * _ROWS_PER_PART / 1e6:g}M)")


def check(workload: str, answer, reference):
    if workload == "per_row_score":
        return udf.check(workload, answer, reference)
    return seeds.check(workload, answer, reference)


def same_answer(a, b) -> bool:
    return seeds.check("", a, b) is None


def _link_dir(src, dst, limit=None) -> None:
    os.makedirs(dst)
    for name in sorted(f for f in os.listdir(src) if f.endswith(".parquet"))[:limit]:
        try:
            os.link(os.path.join(src, name), os.path.join(dst, name))
        except OSError:      # another filesystem: a copy reads the same
            shutil.copy2(os.path.join(src, name), os.path.join(dst, name))


def link_data(root, seeds_dir, udf_dir, udf_parts: int = UDF_PARTS) -> str:
    """``root/<table>/`` for every seeds table and ``root/rows/`` with the first ``udf_parts``
    files of the udf suite's rows, as hard links; redone from scratch each time."""
    root = str(root)
    shutil.rmtree(root, ignore_errors=True)
    for table in seeds.TABLES:
        _link_dir(os.path.join(seeds_dir, table), os.path.join(root, table))
    _link_dir(os.path.join(udf_dir, "rows"), os.path.join(root, "rows"), udf_parts)
    return root


def prepare(sf: float):
    """The data directory engines get, and its manifests (``--sf`` does not apply)."""
    from bench import data
    seeds_dir, udf_dir = data.ensure_seeds(seeds.DATA), data.ensure_udf(udf.DATA)
    root = link_data(data.DATA_ROOT / "ray", seeds_dir, udf_dir)
    return root, {"seeds": data.seeds_manifest(), "udf": data.generated_manifest("udf"),
                  "udf_parts_used": sorted(os.listdir(os.path.join(root, "rows")))}


def results_summary(doc) -> list:
    """sluice-ray's speed-up over Ray Data per workload, against the targets (printed, not
    asserted)."""
    med = {}
    for r in doc["results"]:
        if r["status"] == "ok":
            med[(r["workload"], r["engine"])] = r["median_s"]
    lines = [(f"sluice (`runner=\"ray\"`) against Ray Data, on the same {NODES}-node cluster "
              f"({doc['threads']} CPUs in all, {OBJECT_STORE_MIB} MiB object store per node), "
              "median seconds:"), "",
             ("| workload | sluice-ray s | ray-data s | ray-data / sluice-ray | target "
              "| ray-data-broadcast s | ray-data-broadcast / sluice-ray |"),
             "|---|--:|--:|--:|---|--:|--:|"]
    verdicts = []
    status = {(r["workload"], r["engine"]): r["status"] for r in doc["results"]}

    def cell(wl, engine):
        s = med.get((wl, engine))
        return f"{s:.3f}" if s is not None else status.get((wl, engine), "-")

    for wl in dict.fromkeys(r["workload"] for r in doc["results"]):
        s, ray, bc = (med.get((wl, e)) for e in ("sluice-ray", "ray-data", "ray-data-broadcast"))
        target = TARGETS.get(wl)
        speedup = ray / s if s and ray else None
        met = None if speedup is None or target is None else speedup >= target
        lines.append(f"| {wl} | {cell(wl, 'sluice-ray')} | {cell(wl, 'ray-data')} "
                     f"| {'-' if speedup is None else f'{speedup:.2f}'} "
                     f"| {'-' if target is None else f'>= {target:g}x'}"
                     f"{'' if met is None else (': met' if met else ': NOT met')} "
                     f"| {cell(wl, 'ray-data-broadcast') if (wl, 'ray-data-broadcast') in status else '-'} "
                     f"| {f'{bc / s:.2f}' if s and bc else '-'} |")
        if target is not None:
            verdicts.append(f"- {wl}: sluice-ray "
                            + (f"{speedup:.2f}x Ray Data" if speedup is not None else "not comparable")
                            + f" (target >= {target:g}x: "
                            + ("met" if met else "NOT met" if met is not None else "not measured") + ")")
    return lines + [""] + verdicts

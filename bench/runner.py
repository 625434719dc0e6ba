"""Run every (workload, engine) pair: reference answer, warm-up, timed runs.

Each run is a fresh subprocess (see ``bench.engines``).  Per workload the
suite's reference engine runs once first to produce the expected answer (and
to warm the OS page cache).  Then every engine gets one warm-up run whose
answer must match the reference (a mismatch is reported as "wrong" and the
engine is not timed), followed by ``runs`` timed runs, interleaved across
engines.  Failures never abort the suite; they become ``status: "error"``
rows with the engine's own message.
"""
import json
import statistics
import subprocess
import sys
import time

from bench import engines
from bench.engines.harness import MARKER


def run_once(engine: str, workload: str, data_dir, threads: int, timeout: float) -> dict:
    """One subprocess; returns the engine's JSON, or ``{"error": ...}``."""
    cmd = engines.command(engine, workload, data_dir)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=engines.REPO_ROOT, env=engines.environment(engine, threads),
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:g}s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(MARKER)]
    if lines:
        out = json.loads(lines[-1][len(MARKER):])
    else:
        err = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        out = {"error": err[-1].strip() if err else f"exit code {p.returncode}"}
    if "error" in out and p.stderr.strip():
        out["stderr_tail"] = p.stderr.strip()[-2000:]
    out["process_s"] = round(time.perf_counter() - t0, 3)
    return out


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def warm_up(suite, engine, workload, data_dir, threads, timeout, reference) -> dict:
    """The untimed first run: collects versions and checks the answer."""
    row = {"workload": workload, "engine": engine, "status": "ok", "times_s": []}
    warm = run_once(engine, workload, data_dir, threads, timeout)
    row.update(versions=warm.get("versions", {}), python=warm.get("python"),
               answer=warm.get("answer"), rss=[warm.get("peak_rss_mib")])
    if "error" in warm:
        row.update(status="error", message=warm["error"], stderr_tail=warm.get("stderr_tail"))
    elif reference is None:
        row.update(status="error", message="no reference answer to check against")
    elif not suite.same_answer(warm["answer"], reference):
        row.update(status="wrong", message=f"got {warm['answer']}, expected {reference}")
    return row


def timed_run(suite, row, i, data_dir, threads, timeout, reference) -> None:
    """One timed run, appended to ``row``; errors/wrong answers end the engine."""
    r = run_once(row["engine"], row["workload"], data_dir, threads, timeout)
    if "error" in r:
        row.update(status="error", message=f"timed run {i}: {r['error']}",
                   stderr_tail=r.get("stderr_tail"))
    elif not suite.same_answer(r["answer"], reference):
        row.update(status="wrong", message=f"timed run {i} got {r['answer']}")
    else:
        row["times_s"].append(round(r["seconds"], 4))
        row["rss"].append(r["peak_rss_mib"])
        _log(f"  {row['engine']:>8} run {i}: {r['seconds']:.3f}s")


def _summarise(row) -> None:
    rss = row.pop("rss")
    t = row["times_s"]
    if row["status"] == "ok":
        row.update(median_s=round(statistics.median(t), 4), min_s=min(t), max_s=max(t),
                   peak_rss_mib=max(rss))


def run_suite(suite, engine_names, data_dir, *, threads, runs, timeout):
    """Returns (rows, {workload: reference answer}).

    Timed runs are interleaved (run 1 of every engine, then run 2, ...) so a
    burst of background load hits all engines alike instead of one.
    """
    rows, references = [], {}
    for workload in suite.WORKLOADS:
        _log(f"{workload}: reference answer from {suite.REFERENCE}")
        ref_run = run_once(suite.REFERENCE, workload, data_dir, threads, timeout)
        reference = references[workload] = ref_run.get("answer")
        if reference is None:
            _log(f"  reference failed: {ref_run.get('error')}")
        group = []
        for engine in engine_names:
            _log(f"{workload}: {engine} warm-up ({threads} threads)")
            group.append(warm_up(suite, engine, workload, data_dir, threads, timeout, reference))
        for i in range(1, runs + 1):
            for row in group:
                if row["status"] == "ok":
                    timed_run(suite, row, i, data_dir, threads, timeout, reference)
        for row in group:
            _summarise(row)
            if row["status"] != "ok":
                _log(f"  {row['engine']}: {row['status']}: {row['message']}")
        rows += group
    return rows, references

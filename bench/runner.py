"""Run every (workload, engine) pair: reference answer, checked warm-up, timed runs.

Every engine run happens in a fresh subprocess (``bench.engines.harness`` is the other
half), pinned to the same CPUs and given the same thread budget.  Two process layouts,
chosen by the suite (``PROCESS_PER``) or ``--process-per``:

- ``workload`` (tpch, seeds): one process per (engine, workload) does the warm-up and
  the ``runs`` timed runs itself.  The reference engine goes first; its warm-up answer
  is the reference and is handed (as a JSON file) to every other engine's process,
  which checks its warm-up answer before timing anything and checks every timed run
  too.  Interpreter start and imports are paid once per pair instead of once per run.
- ``run`` (core): one process per run.  The reference engine runs once, untimed; each
  engine gets a warm-up process whose answer must match, then the timed runs are
  interleaved across engines (run 1 of each engine, then run 2, ...), so a burst of
  background load hits all engines alike.

A wrong answer is reported as ``wrong`` and the engine is not timed; an engine that
cannot express a workload is ``n/a``; a crash, exception or timeout is ``error`` with
the engine's own message.  None of them stops the suite.

Engine variants are one engine module run with different settings (``VARIANTS``), e.g.
``sluice-noadaptive`` is the sluice module with adaptive execution switched off, and
``sluice-warm`` starts sluice's UDF fork server before the clock.
A suite's ``ENVIRONMENT`` is added to every engine process's environment (the ``ray`` suite
asks for its cluster shape that way), and its ``REFERENCES`` names a reference engine per
workload where one engine cannot answer them all.
``scripts`` maps extra engine names to a Python file run in place of
``bench.engines.<name>`` (the tests use it for deliberately wrong engines).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench import engines
from bench.engines.harness import MARKER, RUN_MARKER

# name -> (engine module, extra environment)
VARIANTS = {
    "sluice-noadaptive": ("sluice", {"BENCH_SLUICE_ADAPTIVE": "0"}),
    # sluice with its UDF fork server started before the clock, as Ray's cluster is (udf suite)
    "sluice-warm": ("sluice", {"BENCH_SLUICE_WARM": "1"}),
    # Ray Data's per-row API (Dataset.map) instead of map_batches with a loop (udf suite)
    "ray-data-map": ("ray-data", {"BENCH_RAY_ROW_API": "1"}),
    # Ray Data with a broadcast join written by hand in map_batches (ray suite)
    "ray-data-broadcast": ("ray-data", {"BENCH_RAY_BROADCAST": "1"}),
}


def compile_sluice() -> None:
    """Write the bytecode of sluice's modules, as `pip install` does for an installed package.

    An editable install (``pip install -e .``) has none until an import writes it, and never
    with PYTHONDONTWRITEBYTECODE set: every engine process would then compile sluice's sources,
    and the modules first imported during a query (the runner's) inside the clock, while
    the peers, installed packages, load compiled bytecode."""
    import compileall
    import importlib.util
    spec = importlib.util.find_spec("sluice")
    for location in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(location, quiet=1)


def known_engines() -> tuple:
    return tuple(engines.ENGINES) + tuple(VARIANTS)


def _suite_name(suite) -> str:
    return suite.__name__


def cpus_for(threads: int) -> list:
    """The CPUs every engine process is pinned to: the first ``threads`` usable ones."""
    usable = sorted(os.sched_getaffinity(0))
    return usable[:max(1, min(threads, len(usable)))]


def reference_for(suite, workload) -> str:
    """The engine whose answer is the truth for ``workload``: the suite's ``REFERENCES``
    entry (a suite mixing workloads of other suites, e.g. ``ray``), else ``REFERENCE``."""
    return getattr(suite, "REFERENCES", {}).get(workload, suite.REFERENCE)


def _launch(engine, workload, data_dir, threads, scripts, suite_env=None):
    base, extra_env = VARIANTS.get(engine, (engine, {}))
    if scripts and engine in scripts:
        cmd = [sys.executable, str(scripts[engine]), "--workload", workload, "--data", str(data_dir)]
    else:
        cmd = engines.command(base, workload, data_dir)
    env = engines.environment(base, threads)
    env.update(suite_env or {})
    env.update(extra_env)
    env.setdefault("SLUICE_PROGRESS", "0")
    return cmd, env


def _parse_output(stdout: str) -> tuple:
    result, runs = None, []
    for line in (stdout or "").splitlines():
        if line.startswith(MARKER):
            result = json.loads(line[len(MARKER):])
        elif line.startswith(RUN_MARKER):
            runs.append(json.loads(line[len(RUN_MARKER):]))
    return result, runs


def run_process(engine, suite, workload, data_dir, *, threads, timeout, warmup, runs,
                expect=None, scripts=None) -> dict:
    """One engine subprocess; returns the harness's JSON (status ok/wrong/n/a/error)."""
    cmd, env = _launch(engine, workload, data_dir, threads, scripts, getattr(suite, "ENVIRONMENT", None))
    cmd += ["--suite", _suite_name(suite), "--warmup", str(warmup), "--runs", str(runs)]
    if expect is not None:
        cmd += ["--expect", str(expect)]
    cpus = cpus_for(threads)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=engines.REPO_ROOT, env=env, capture_output=True, text=True,
                           timeout=timeout, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    except subprocess.TimeoutExpired as e:
        partial = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        _, done = _parse_output(partial)
        so_far = "; finished: " + ", ".join(f"{r['run']} {r['seconds']:.1f}s" for r in done) if done else ""
        return {"status": "error", "message": f"timeout after {timeout:g}s{so_far}",
                "process_s": round(time.perf_counter() - t0, 3)}
    out, _ = _parse_output(p.stdout)
    if out is None:
        err = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        out = {"status": "error", "message": err[-1].strip() if err else f"exit code {p.returncode}"}
    if out.get("status") == "error" and p.stderr.strip():
        out["stderr_tail"] = p.stderr.strip()[-2000:]
    out["process_s"] = round(time.perf_counter() - t0, 3)
    return out


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _row(workload, engine, out, summarize) -> dict:
    row = {"workload": workload, "engine": engine, "status": out.get("status", "error"),
           "times_s": [round(t, 4) for t in out.get("times_s", [])],
           "versions": out.get("versions", {}), "python": out.get("python"),
           "answer": summarize(out.get("answer")), "rss": [out.get("peak_rss_mib")],
           "warmup_s": None if out.get("warmup_s") is None else round(out["warmup_s"], 4),
           "notes": out.get("notes", []), "process_s": [out.get("process_s")]}
    for key in ("message", "stderr_tail"):
        if out.get(key):
            row[key] = out[key]
    return row


def _summarise(row) -> None:
    rss = [r for r in row.pop("rss") if r is not None]
    t = row["times_s"]
    if row["status"] == "ok" and not t:
        row.update(status="error", message="no timed run")
    if row["status"] == "ok":
        row.update(median_s=round(statistics.median(t), 4), min_s=min(t), max_s=max(t),
                   peak_rss_mib=max(rss) if rss else None)
    else:
        row["times_s"] = []


def _show(row) -> None:
    if row["status"] == "ok":
        _log(f"  {row['engine']:>17}: median {statistics.median(row['times_s']):.3f}s "
             f"of {row['times_s']}")
    else:
        _log(f"  {row['engine']:>17}: {row['status']}: {row.get('message', '')[:300]}")


def run_suite(suite, engine_names, data_dir, *, threads, runs, timeout, process_per=None,
              scripts=None):
    """Returns (rows, {workload: reference answer (summarised)})."""
    process_per = process_per or getattr(suite, "PROCESS_PER", "run")
    summarize = getattr(suite, "summary", lambda a: a)
    only = getattr(suite, "ENGINE_WORKLOADS", {})   # engine -> the only workloads it runs
    if getattr(suite, "TIME_REFERENCE", False) and suite.REFERENCE not in engine_names:
        engine_names = [suite.REFERENCE, *engine_names]   # the suite's figures are relative to it
    rows, references = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-expect-") as tmp:
        for workload in suite.WORKLOADS:
            names = [e for e in engine_names if e not in only or workload in only[e]]
            expect = os.path.join(tmp, f"{workload}.json")
            kw = dict(threads=threads, timeout=timeout, scripts=scripts)
            group, reference, ref_out = [], None, None
            ref_engine = reference_for(suite, workload)
            _log(f"{workload}: reference answer from {ref_engine}")
            if process_per == "workload" and ref_engine in names:
                ref_out = run_process(ref_engine, suite, workload, data_dir, warmup=1,
                                      runs=runs, **kw)
                group.append(_row(workload, ref_engine, ref_out, summarize))
                _show(group[-1])
            else:
                ref_out = run_process(ref_engine, suite, workload, data_dir, warmup=1,
                                      runs=0, **kw)
            if ref_out.get("status") == "ok":
                reference = ref_out["answer"]
                with open(expect, "w") as f:
                    json.dump(reference, f)
            else:
                _log(f"  reference failed: {ref_out.get('status')}: {ref_out.get('message')}")
            references[workload] = summarize(reference)
            todo = [e for e in names if not any(r["engine"] == e for r in group)]
            for engine in todo:
                if reference is None:
                    group.append(_row(workload, engine, {
                        "status": "error", "message": f"not run: no reference answer from "
                        f"{ref_engine} ({ref_out.get('status')}: {ref_out.get('message')})"},
                        summarize))
                    continue
                _log(f"{workload}: {engine} ({threads} threads)")
                if process_per == "workload":
                    out = run_process(engine, suite, workload, data_dir, warmup=1, runs=runs,
                                      expect=expect, **kw)
                else:
                    out = run_process(engine, suite, workload, data_dir, warmup=1, runs=0,
                                      expect=expect, **kw)
                group.append(_row(workload, engine, out, summarize))
                if process_per == "workload":
                    _show(group[-1])
            if process_per == "run":
                for i in range(1, runs + 1):
                    for row in group:
                        if row["status"] != "ok":
                            continue
                        out = run_process(row["engine"], suite, workload, data_dir, warmup=0,
                                          runs=1, expect=expect, **kw)
                        row["process_s"].append(out.get("process_s"))
                        if out.get("status") != "ok":
                            row.update(status=out.get("status", "error"),
                                       message=f"timed run {i}: {out.get('message')}",
                                       answer=summarize(out.get("answer")))
                            if out.get("stderr_tail"):
                                row["stderr_tail"] = out["stderr_tail"]
                            continue
                        row["times_s"].append(round(out["times_s"][0], 4))
                        row["rss"].append(out.get("peak_rss_mib"))
                        row["notes"] += out.get("notes", [])
                        _log(f"  {row['engine']:>17} run {i}: {out['times_s'][0]:.3f}s")
                for row in group:
                    if row["status"] != "ok":
                        _show(row)
            for row in group:
                _summarise(row)
                # a right answer is the reference's: keep it only where it is small
                if row["status"] == "ok" and len(json.dumps(row.get("answer"))) > 2000:
                    row["answer"] = "matches the reference"
            rows += sorted(group, key=lambda r: list(engine_names).index(r["engine"])
                           if r["engine"] in engine_names else len(engine_names))
    return rows, references

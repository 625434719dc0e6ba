"""The in-subprocess half of one engine run: time the query, report JSON.

Engine modules call ``main(versions, workloads)`` under ``__main__``.  The
clock covers only the workload function (query construction, execution and
reduction to scalars), not interpreter start, imports or engine setup.  Peak
RSS is the whole process's (``ru_maxrss``), imports included.  The result is
printed as one ``BENCH_RESULT {json}`` line on stdout; exceptions become an
``error`` field so the runner can put them in the table.
"""
import argparse
import json
import os
import resource
import sys
import time
import traceback

MARKER = "BENCH_RESULT "


def threads() -> int:
    """Thread budget chosen by the runner (defaults to all usable cores)."""
    return int(os.environ.get("BENCH_THREADS") or len(os.sched_getaffinity(0)))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(versions: dict, workloads: dict) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--data", required=True, help="bench/data/sf{N} directory")
    args = ap.parse_args()
    out = {"versions": versions, "threads": threads(),
           "python": sys.version.split()[0]}
    try:
        if args.workload not in workloads:
            raise NotImplementedError(f"workload {args.workload!r} not implemented")
        fn = workloads[args.workload]
        t0 = time.perf_counter()
        answer = fn(args.data)
        out["seconds"] = time.perf_counter() - t0
        out["answer"] = answer
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        traceback.print_exc()
        out["error"] = f"{type(e).__name__}: {e}"
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    print(MARKER + json.dumps(out), flush=True)

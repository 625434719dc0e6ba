"""The in-subprocess half of an engine run: run the workload, check it, time it, report JSON.

Engine modules call ``main(versions, workloads)`` under ``__main__``.  Command line
(built by ``bench.runner``)::

    python -m bench.engines.<engine> --workload W --data DIR
        [--suite S] [--warmup 0|1] [--runs N] [--expect answer.json]

The process calls the workload function ``warmup + runs`` times (default: no warm-up,
one run).  Every answer is checked, with the suite's ``check(workload, answer,
reference)``, against ``--expect`` (the reference engine's answer) or, without it,
against this process's first answer (the reference engine checks its own repeat runs).
The first mismatch ends the process with status ``wrong``: a warm-up that is wrong is
never followed by a timed run.  The clock covers only the workload function (building
the query, executing it and turning the result into the answer), not interpreter
start, imports or engine setup.  Peak RSS is the whole process's (``ru_maxrss``,
imports and every run included).

A workload function that raises ``NotApplicable`` (or a plain ``NotImplementedError``),
or that the engine does not define at all, is reported as ``n/a``: the engine cannot
express it.  Any other exception is ``error``, including a library's subclass of
NotImplementedError (pyarrow's ArrowNotImplementedError is a real failure).  A function may call ``note(key, value)`` to
attach engine-side observations (e.g. sluice's reduce-task sizes) to the current run.

Output: one ``BENCH_RESULT {json}`` line on stdout at the end, preceded by one
``BENCH_RUN {json}`` line per finished call so that a run killed by the timeout still
tells how far it got.  This module is stdlib-only.
"""
import argparse
import importlib
import json
import os
import resource
import sys
import time
import traceback

MARKER = "BENCH_RESULT "
RUN_MARKER = "BENCH_RUN "


class NotApplicable(NotImplementedError):
    """Raised by a workload function when the engine cannot express the workload."""


_notes: dict = {}


def note(key: str, value) -> None:
    """Attach a JSON-able observation to the current run (kept in the results JSON)."""
    _notes[key] = value


def threads() -> int:
    """Thread budget chosen by the runner (defaults to all usable cores)."""
    return int(os.environ.get("BENCH_THREADS") or len(os.sched_getaffinity(0)))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _checker(suite_name):
    """check(workload, answer, reference) -> None or a reason, from the suite module."""
    if not suite_name:
        return lambda w, a, b: None if a == b else "answer differs"
    # "bench.suites.tpch" (what the runner passes), "tpch", or a test's own suite module
    try:
        suite = importlib.import_module(suite_name if "." in suite_name
                                        else f"bench.suites.{suite_name}")
    except ModuleNotFoundError:
        suite = importlib.import_module(suite_name)
    if hasattr(suite, "check"):
        return suite.check
    return lambda w, a, b: None if suite.same_answer(a, b) else f"got {a}, expected {b}"


def _parse(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--data", required=True, help="the suite's data directory")
    ap.add_argument("--suite", default=None, help="bench.suites module whose check() is used")
    ap.add_argument("--warmup", type=int, default=0, help="untimed runs first (0 or 1)")
    ap.add_argument("--runs", type=int, default=1, help="timed runs")
    ap.add_argument("--expect", default=None, help="JSON file with the reference answer")
    return ap.parse_args(argv)


def run(versions: dict, workloads: dict, args) -> dict:
    out = {"versions": versions, "threads": threads(), "python": sys.version.split()[0],
           "status": "ok", "times_s": [], "notes": []}
    expected = None
    if args.expect:
        with open(args.expect) as f:
            expected = json.load(f)
    try:
        check = _checker(args.suite)
        if args.workload not in workloads:
            raise NotApplicable(f"workload {args.workload!r} not implemented by this engine")
        fn = workloads[args.workload]
        for i in range(args.warmup + args.runs):
            label = "warm-up" if i < args.warmup else f"timed run {i - args.warmup + 1}"
            _notes.clear()
            t0 = time.perf_counter()
            answer = fn(args.data)
            seconds = time.perf_counter() - t0
            if i == 0:
                out["answer"] = answer
            reason = check(args.workload, answer, expected if expected is not None else out["answer"])
            print(RUN_MARKER + json.dumps({"run": label, "seconds": seconds,
                                           "ok": reason is None}), flush=True)
            if reason is not None:
                out.update(status="wrong", answer=answer, message=f"{label}: {reason}")
                break
            if i < args.warmup:
                out["warmup_s"] = seconds
            else:
                out["times_s"].append(seconds)
                out["notes"].append(dict(_notes))
    except NotImplementedError as e:
        if type(e) in (NotImplementedError, NotApplicable):
            out.update(status="n/a", message=str(e) or type(e).__name__)
        else:  # a library's subclass (pyarrow's ArrowNotImplementedError...) is a real failure
            traceback.print_exc()
            out.update(status="error", message=f"{type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        traceback.print_exc()
        out.update(status="error", message=f"{type(e).__name__}: {e}")
    if out["status"] != "ok":
        out["times_s"], out["notes"] = [], []
    if out["times_s"]:
        out["seconds"] = out["times_s"][0]
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return out


def main(versions: dict, workloads: dict, argv=None) -> None:
    out = run(versions, workloads, _parse(argv))
    print(MARKER + json.dumps(out), flush=True)

"""Command line: ``python -m bench run --suite tpch [--sf 1] [--runs 3] [--engines a,b]``,
and ``python -m bench report --from bench/results/X.json [--section NAME]`` to rewrite a
RESULTS.md section from a results file already recorded.

Kept separate from the runner so the CLI surface (what people type and what
is recorded as "the exact command") lives in one small place.
"""
import argparse
import os
import shlex
import sys
import time

from bench import data, machine, report, runner
from bench.suites import SUITES


def _parse(argv):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a benchmark suite")
    run.add_argument("--suite", required=True, choices=sorted(SUITES))
    run.add_argument("--sf", type=float, default=1.0,
                     help="TPC-H scale factor (default 1; the seeds suite has its own fixed data)")
    run.add_argument("--runs", type=int, default=3, help="timed runs per engine (default 3)")
    run.add_argument("--engines", default=None,
                     help="comma-separated engines (default: the suite's engines)")
    run.add_argument("--workloads", default=None,
                     help="comma-separated subset of the suite's workloads (default: all)")
    run.add_argument("--threads", type=int, default=None,
                     help="threads given to every engine (default: usable cores)")
    run.add_argument("--timeout", type=float, default=None,
                     help="seconds before one engine process is killed "
                          "(default: the suite's TIMEOUT, else 900)")
    run.add_argument("--process-per", choices=("run", "workload"), default=None,
                     help="a fresh process per timed run, or one per (engine, workload) "
                          "doing warm-up + runs (default: the suite's PROCESS_PER)")
    run.add_argument("--no-report", action="store_true",
                     help="print results only; do not write results/ or RESULTS.md")
    run.add_argument("--section", default=None,
                     help="the RESULTS.md section to (re)write (default: the suite's name); e.g. "
                          "tpch-peers for a run with every peer, beside the tpch section")
    rep = sub.add_parser("report", help="rewrite a RESULTS.md section from a results JSON")
    rep.add_argument("--from", dest="source", required=True, help="a bench/results/*.json file")
    rep.add_argument("--section", default=None, help="section name (default: the one recorded)")
    return ap.parse_args(argv)


def _report(args) -> int:
    import json
    try:
        with open(args.source) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        sys.exit(f"cannot read results file {args.source!r}: {exc}")
    if args.section:
        doc["section"] = args.section
    report.write(doc, write_json=False)
    print(f"rewrote section {report.section_name(doc)!r} of bench/RESULTS.md from {args.source}")
    return 0


class _Subset:
    """The suite with only the chosen workloads (everything else delegated)."""

    def __init__(self, suite, workloads):
        self._suite, self.WORKLOADS = suite, workloads

    def __getattr__(self, name):
        return getattr(self._suite, name)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    if args.cmd == "report":
        return _report(args)
    suite = SUITES[args.suite]
    engines = args.engines.split(",") if args.engines else list(suite.ENGINES)
    unknown = [e for e in engines if e not in runner.known_engines()]
    if unknown:
        sys.exit(f"unknown engine(s) {unknown}; known: {sorted(runner.known_engines())}")
    if args.runs < 1:
        sys.exit("--runs must be >= 1")
    if args.workloads:
        chosen = args.workloads.split(",")
        missing = [w for w in chosen if w not in suite.WORKLOADS]
        if missing:
            sys.exit(f"unknown workload(s) {missing}; known: {list(suite.WORKLOADS)}")
        suite = _Subset(suite, {w: suite.WORKLOADS[w] for w in chosen})
    from bench import venvs
    for engine in engines:
        base = runner.VARIANTS.get(engine, (engine, {}))[0]
        if base in venvs.OWN_VENV:
            venvs.ensure(base)  # each peer in its own virtualenv, built on first use from its pins
    threads = args.threads or len(os.sched_getaffinity(0))
    timeout = args.timeout or getattr(suite, "TIMEOUT", 900.0)
    process_per = args.process_per or getattr(suite, "PROCESS_PER", "run")
    command = "python -m bench " + shlex.join(argv)

    runner.compile_sluice()
    started = time.perf_counter()
    host = machine.info()   # before anything runs: the load average is other work's
    if machine.busy_warning(host):
        print("warning: " + machine.busy_warning(host), file=sys.stderr)
    if hasattr(suite, "prepare"):
        data_dir, manifests = suite.prepare(args.sf)
    else:
        data_dir = data.ensure_tables(args.sf, suite.TABLES)
        manifests = data.manifests(args.sf, suite.TABLES)
    rows, refs = runner.run_suite(suite, engines, data_dir, threads=threads, runs=args.runs,
                                  timeout=timeout, process_per=process_per)
    doc = report.build(args.suite, command, args.sf, args.runs, threads, rows, refs, manifests,
                       host, process_per=process_per, data_note=getattr(suite, "DATA_NOTE", None),
                       wall_s=round(time.perf_counter() - started, 1), section=args.section)
    print(report.table(doc))
    if not args.no_report:
        path = report.write(doc)
        print(f"\nwrote {path} and bench/RESULTS.md")
    print(f"wall time {doc['wall_s']:.0f} s (data preparation included)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

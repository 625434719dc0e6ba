"""Command line: ``python -m bench run --suite core [--sf 1] [--runs 3] [--engines a,b]``.

Kept separate from the runner so the CLI surface (what people type and what
is recorded as "the exact command") lives in one small place.
"""
import argparse
import os
import shlex
import sys

from bench import data, machine, report, runner
from bench.engines import ENGINES
from bench.suites import SUITES


def _parse(argv):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a benchmark suite")
    run.add_argument("--suite", required=True, choices=sorted(SUITES))
    run.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    run.add_argument("--runs", type=int, default=3, help="timed runs per engine (default 3)")
    run.add_argument("--engines", default=None,
                     help="comma-separated engines (default: the suite's engines)")
    run.add_argument("--threads", type=int, default=None,
                     help="threads given to every engine (default: usable cores)")
    run.add_argument("--timeout", type=float, default=900.0,
                     help="seconds before one engine run is killed (default 900)")
    run.add_argument("--no-report", action="store_true",
                     help="print results only; do not write results/ or RESULTS.md")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    suite = SUITES[args.suite]
    engines = args.engines.split(",") if args.engines else list(suite.ENGINES)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        sys.exit(f"unknown engine(s) {unknown}; known: {sorted(ENGINES)}")
    if args.runs < 1:
        sys.exit("--runs must be >= 1")
    threads = args.threads or len(os.sched_getaffinity(0))
    command = "python -m bench " + shlex.join(argv)

    data_dir = data.ensure_tables(args.sf, suite.TABLES)
    host = machine.info()   # before running: load average at start
    if machine.busy_warning(host):
        print("warning: " + machine.busy_warning(host), file=sys.stderr)
    rows, refs = runner.run_suite(suite, engines, data_dir, threads=threads,
                                  runs=args.runs, timeout=args.timeout)
    doc = report.build(args.suite, command, args.sf, args.runs, threads, rows,
                       refs, data.manifests(args.sf, suite.TABLES), host)
    print(report.table(doc))
    if not args.no_report:
        path = report.write(doc)
        print(f"\nwrote {path} and bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The `sluice` command: run or explain a pipeline script, and run the demo."""

from __future__ import annotations

import argparse
import os
import runpy
import sys

from . import config
from .errors import SluiceError
from .observe import session


def _run_script(path: str, argv: list[str]) -> dict:
    if not os.path.isfile(path):
        raise SluiceError(f"No such pipeline script: {path!r}. Pass the path of a Python file.")
    sys.argv = [path] + argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    return runpy.run_path(path, run_name="__main__")


def _print_summaries() -> None:
    from .observe.stats import report_console
    console = report_console()
    if not session.runs:
        console.print("The script ran no sluice action.")
    for stats in session.runs:
        console.print(stats.table())


def cmd_run(args) -> int:
    if args.runner:
        config.configure(runner=args.runner)
    _run_script(args.script, args.script_args)
    _print_summaries()
    return 0


def cmd_explain(args) -> int:
    from .dataset import Dataset
    if args.analyze:
        from .observe.analyze import analyzed_plan
        _run_script(args.script, args.script_args)
        if not session.runs:
            print("The script ran no sluice action, so there is nothing to analyze.")
        for stats in session.runs:
            print(analyzed_plan(stats) + "\n")
        return 0
    session.explain_only = True
    try:
        namespace = _run_script(args.script, args.script_args)
    finally:
        session.explain_only = False
    unexplained = [(name, value) for name, value in namespace.items()
                   if isinstance(value, Dataset) and not name.startswith("_") and value not in session.explained]
    if not session.explained and not unexplained:
        print("The script builds no sluice Dataset.")
    for name, dataset in unexplained:
        print(f"\n### dataset `{name}` (no action ran on it)")
        dataset.explain()
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    run_demo(args.dir, args.rows)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description="Batch data pipelines on every core.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a pipeline script and print the run summary")
    run.add_argument("script")
    run.add_argument("script_args", nargs=argparse.REMAINDER)
    run.add_argument("--runner", choices=["local", "ray"], default=None)
    run.set_defaults(fn=cmd_run)
    explain = commands.add_parser("explain", help="print the plans of a pipeline script without running it")
    explain.add_argument("--analyze", action="store_true",
                         help="run the script, then print each run's physical plan with measured figures")
    explain.add_argument("script")
    explain.add_argument("script_args", nargs=argparse.REMAINDER)
    explain.set_defaults(fn=cmd_explain)
    demo = commands.add_parser("demo", help="generate a synthetic lake and run a pipeline over it")
    demo.add_argument("--dir", default=None, help="where to put the lake (default: a temporary folder)")
    demo.add_argument("--rows", type=int, default=1_000_000, help="number of click events (default 1,000,000)")
    demo.set_defaults(fn=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except SluiceError as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The `sluice` command: run or explain a pipeline script, inspect past runs and their bad records, the demo."""

from __future__ import annotations

import argparse
import os
import runpy
import sys

from .. import config
from ..driver import session
from ..errors import SluiceError


def _run_script(path: str, argv: list[str]) -> dict:
    if not os.path.isfile(path):
        raise SluiceError(f"No such pipeline script: {path!r}. Pass the path of a Python file.")
    sys.argv = [path] + argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    return runpy.run_path(path, run_name="__main__")


def _print_summaries() -> None:
    from ..observe.stats import report_console
    console = report_console()
    if not session.runs:
        console.print("The script ran no sluice action.")
    for stats in session.runs:
        console.print(stats.table())
        for line in stats.footer_lines():
            console.print(line)


def cmd_run(args) -> int:
    if args.runner:
        config.configure(runner=args.runner)
    if args.address:
        config.configure(ray_address=args.address)
    if args.metrics_port is not None or args.metrics_host is not None:
        settings = config.configure(metrics_port=args.metrics_port, metrics_host=args.metrics_host)
        if settings.metrics_port:
            print(f"sluice: Prometheus metrics at http://{settings.metrics_host}:{settings.metrics_port}/metrics "
                  f"while runs go", file=sys.stderr)
    _run_script(args.script, args.script_args)
    _print_summaries()
    return 0


def cmd_explain(args) -> int:
    from .dataset import Dataset
    if args.analyze:
        from ..observe.analyze import analyzed_plan
        _run_script(args.script, args.script_args)
        if not session.runs:
            print("The script ran no sluice action, so there is nothing to analyze.")
        for stats in session.runs:
            print(analyzed_plan(stats) + "\n")
        return 0
    print(f"sluice explain runs {args.script} to find its datasets; its actions read no data and its writes "
          f"write nothing (their results are empty), so anything the script prints about them shows zeros.")
    session.explain_only = True
    try:
        namespace = _run_script(args.script, args.script_args)
    finally:
        session.explain_only = False
    unexplained = [(name, value) for name, value in namespace.items()
                   if isinstance(value, Dataset) and not name.startswith("_") and value not in session.explained]
    if not session.explained and not unexplained:
        print("The script builds no sluice Dataset.")
    elif not session.explained and not args.all:
        print(f"The script runs no action (to_arrow, count, write_*, ...). `sluice explain --all {args.script}` "
              f"explains each of the {len(unexplained)} dataset(s) it builds.")
    if args.all:
        for name, dataset in unexplained:
            print(f"\n### dataset `{name}` (no action ran on it)")
            dataset.explain()
    return 0


def _runs_dir(args) -> str:
    return args.runs_dir or config.current().runs_dir


def cmd_runs(args) -> int:
    from rich.table import Table

    from ..driver.resume import is_alive
    from ..observe.history import crashed_run, list_runs, run_directory
    from ..observe.stats import format_bytes, report_console
    console = report_console()
    runs_dir = _runs_dir(args)
    if args.action == "show":
        if not args.run:
            raise SluiceError("`sluice runs show` needs a run id: `sluice runs show RUN`.")
        import json
        with open(os.path.join(run_directory(runs_dir, args.run), "run.json")) as f:
            run = json.load(f)
        console.print(f"run {run['run_id']}: {run['status']} in {run['wall_s']:.2f}s; settings {run['settings']}")
        for op in run["operators"]:
            console.print(f"  stage {op['stage_id']} {op['name']}: {op['rows_in']:,} -> {op['rows_out']:,} rows, "
                          f"{format_bytes(op['bytes_out'])} out, {op['wall_s']:.2f}s wall")
        if run.get("bad_records"):
            console.print(f"  [bold red]{run['bad_records']:,} bad records[/] in {run['bad_records_path']}")
        for check in run.get("checks") or []:
            console.print(f"  check {check['status']}: {check['check']}: {check['detail']}")
        if run.get("plan"):
            console.print(run["plan"], markup=False, highlight=False)
        return 0
    runs = list_runs(runs_dir)
    if not runs:
        console.print(f"No runs recorded in {runs_dir}.")
        return 0
    table = Table(title=f"sluice runs in {runs_dir}")
    for column in ("run", "status", "started", "wall s", "rows out", "bad records", "retries", "checks"):
        table.add_column(column, justify="left" if column in ("run", "status", "started") else "right")
    import datetime
    for run in runs[:args.limit]:
        crashed = run["status"] == "running" and not is_alive(run)
        if crashed:  # its run.json is from when it started: its files say how far it got
            run = crashed_run(os.path.join(runs_dir, run["run_id"]), run)
        started = datetime.datetime.fromtimestamp(run.get("started_at", 0)).strftime("%Y-%m-%d %H:%M:%S")
        rows = run.get("output_rows")
        if rows is None:  # recorded before runs counted their output
            rows = max((op["rows_out"] for op in run["operators"] if op["stage_id"] == max(
                o["stage_id"] for o in run["operators"])), default=0) if run["operators"] else 0
        bad = run.get("bad_records", 0)
        status = run["status"]
        if crashed:
            status = "[bold red]crashed[/] (sluice resume)" if run.get("resumable") else "[bold red]crashed[/]"
        table.add_row(run["run_id"], status, started, f"{run['wall_s']:.2f}", f"{rows:,}",
                      f"[bold red]{bad:,}[/]" if bad else "0", str(run.get("retries", 0)),
                      _checks_cell(run.get("checks") or []))
    console.print(table)
    return 0


def _checks_cell(checks: list[dict]) -> str:
    """`sluice runs`: how the run's data-quality checks came out, e.g. "2 passed, 1 failed"."""
    counts = {status: sum(1 for c in checks if c["status"] == status) for status in ("passed", "warned", "failed")}
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    text = ", ".join(parts) or "-"
    return f"[bold red]{text}[/]" if counts["failed"] else text


def cmd_bad_records(args) -> int:
    import polars as pl

    from ..observe.history import read_dead_letters, run_directory
    directory = os.path.join(run_directory(_runs_dir(args), args.run), "bad_records")
    table = read_dead_letters(directory, ["stage", "operator", "source_file", "row_position", "exception_type",
                                          "message", "record_json"])
    if table is None:
        print(f"Run {args.run} quarantined no records.")
        return 0
    print(f"{table.num_rows:,} bad record(s) in {directory} (read them with sluice.read_parquet):")
    with pl.Config(tbl_rows=args.limit, fmt_str_lengths=80, tbl_width_chars=200):
        print(pl.from_arrow(table).with_row_index("record"))
    return 0


def cmd_repro(args) -> int:
    from ..observe.history import run_directory
    from ..reliability.repro import write_repro
    script, test = write_repro(run_directory(_runs_dir(args), args.run), args.record, args.out)
    print(f"wrote {script}\nwrote {test}\n"
          f"`python {script}` or `python -m pytest {test}` fails the way the run did; once it passes, keep the "
          f"test as a regression test.")
    return 0


def cmd_report(args) -> int:
    from ..observe.history import run_directory
    from ..observe.report import write_report
    path = os.path.abspath(write_report(run_directory(_runs_dir(args), args.run), args.out))
    print(path)
    if args.open:
        import pathlib
        import webbrowser
        webbrowser.open(pathlib.Path(path).as_uri())
    return 0


def cmd_resume(args) -> int:
    from ..driver.resume import resume
    from ..observe.stats import report_console
    if args.runs_dir:
        config.configure(runs_dir=args.runs_dir)
    result = resume(args.run)
    console = report_console()
    for stats in session.runs:
        console.print(stats.table())
        for line in stats.footer_lines():
            console.print(line)
    console.print(f"run {args.run} is complete: {result.rows:,} rows in {len(result.files)} file(s) under "
                  f"{result.path}")
    return 0


_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    text = text.strip().lower()
    try:
        return float(text[:-1]) * _DURATION[text[-1]] if text and text[-1] in _DURATION else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; write e.g. 30m, 12h or 7d") from None


def cmd_gc(args) -> int:
    from ..driver.resume import collect_garbage
    verb = "would remove" if args.dry_run else "removed"
    if args.dataset:
        from ..io.commit import collect_dataset_garbage
        for path in args.dataset:
            files = collect_dataset_garbage(path, older_than_s=args.older_than, dry_run=args.dry_run)
            print(f"{verb} {len(files)} replaced or leftover file{'' if len(files) == 1 else 's'} from {path}")
        return 0
    runs_dir = _runs_dir(args)
    removed = collect_garbage(runs_dir, 7 * 86400 if args.older_than is None else args.older_than, args.dry_run)
    print(f"{verb} {len(removed)} run director{'y' if len(removed) == 1 else 'ies'} from {runs_dir}"
          + (": " + ", ".join(removed) if removed else ""))
    return 0


def _tables_of(args) -> dict[str, str]:
    tables = {}
    for item in args.table:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SluiceError(f"--table {item!r}: write NAME=PATH, e.g. --table lineitem=data/lineitem.parquet.")
        tables[name] = path
    return tables


def _run_models(args) -> int:
    """`sluice sql -f models/ --out target/`: every model of the folder, in dependency order."""
    from ..sql.models import run_models
    if not args.out:
        raise SluiceError(f"{args.file!r} is a folder of models: say where their outputs go with --out DIR.")
    if args.runner:
        config.configure(runner=args.runner)
    def show(result) -> None:
        detail = f"{result.rows} rows" if result.rows is not None else "unchanged since its last commit, kept"
        print(f"{result.name}: {detail} -> {result.path}", flush=True)

    run_models(args.file, args.out, _tables_of(args), show)
    return 0


def cmd_sql(args) -> int:
    from ..sql import split_explain, sql
    if (args.query is None) == (args.file is None):
        raise SluiceError("sluice sql takes a query, or -f FILE with the query in it (not both).")
    if args.file is not None and os.path.isdir(args.file):
        return _run_models(args)
    if args.file is not None:
        if not os.path.isfile(args.file):
            raise SluiceError(f"No such SQL file: {args.file!r}.")
        with open(args.file, encoding="utf-8") as handle:
            text = handle.read()
    else:
        text = args.query
    tables = _tables_of(args)
    if args.runner:
        config.configure(runner=args.runner)
    explain, text = split_explain(text)
    dataset = sql(text, tables)
    if args.explain or explain:
        dataset.explain()
        return 0
    if args.out:
        result = dataset.write_parquet(args.out, mode=args.mode)
        print(f"wrote {result.rows} rows to {result.path}")
        return 0
    import polars as pl

    from ..expr.types import arrow_to_polars
    table = dataset.to_arrow()
    with pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, fmt_str_lengths=60):
        print(arrow_to_polars(table))
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
    run.add_argument("--address", default=None,
                     help="with --runner ray: the Ray cluster to run on, e.g. ray://head:10001 (SLUICE_RAY_ADDRESS)")
    run.add_argument("--metrics-port", type=int, default=None,
                     help="serve Prometheus metrics on this port while runs go (default: off; SLUICE_METRICS_PORT)")
    run.add_argument("--metrics-host", default=None, help="address the metrics endpoint binds (default 127.0.0.1)")
    run.set_defaults(fn=cmd_run)
    explain = commands.add_parser("explain", help="print the plans of a pipeline script's actions without reading data or writing")
    explain.add_argument("--analyze", action="store_true",
                         help="run the script, then print each run's physical plan with measured figures")
    explain.add_argument("--all", action="store_true",
                         help="also explain the datasets the script builds but runs no action on")
    explain.add_argument("script")
    explain.add_argument("script_args", nargs=argparse.REMAINDER)
    explain.set_defaults(fn=cmd_explain)
    runs = commands.add_parser("runs", help="list recorded runs, or `runs show RUN` for one")
    runs.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    runs.add_argument("run", nargs="?")
    runs.add_argument("--limit", type=int, default=30)
    runs.add_argument("--runs-dir", default=None, help="where runs are recorded (default: SLUICE_RUNS_DIR)")
    runs.set_defaults(fn=cmd_runs)
    bad = commands.add_parser("bad-records", help="list the records a run quarantined")
    bad.add_argument("run")
    bad.add_argument("--limit", type=int, default=20)
    bad.add_argument("--runs-dir", default=None)
    bad.set_defaults(fn=cmd_bad_records)
    repro = commands.add_parser("repro", help="write a script and a pytest file that replay a bad record")
    repro.add_argument("run")
    repro.add_argument("--record", type=int, default=0, help="which bad record (default 0; see bad-records)")
    repro.add_argument("--out", default=".", help="directory for the files (default: here)")
    repro.add_argument("--runs-dir", default=None)
    repro.set_defaults(fn=cmd_repro)
    report = commands.add_parser("report", help="write a run's HTML report (timeline, bytes, skew, memory, bad records)")
    report.add_argument("run")
    report.add_argument("--open", action="store_true", help="open the report in a web browser")
    report.add_argument("--out", default=None, help="where to write it (default: <run dir>/report.html)")
    report.add_argument("--runs-dir", default=None)
    report.set_defaults(fn=cmd_report)
    resume = commands.add_parser("resume", help="finish a crashed write run: skips the work it finished")
    resume.add_argument("run")
    resume.add_argument("--runs-dir", default=None)
    resume.set_defaults(fn=cmd_resume)
    gc = commands.add_parser("gc", help="remove the directories of runs that ended long ago, or with --dataset the "
                                        "files a dataset's overwrites replaced")
    gc.add_argument("--older-than", type=_duration, default=None,
                    help="retention: remove runs that ended before this long ago (default 7d; e.g. 12h, 30d); with "
                         "--dataset, files replaced this long ago (default: snapshot_retention_s, a day)")
    gc.add_argument("--dataset", action="append", default=[], metavar="PATH",
                    help="a dataset sluice wrote: remove the files its overwrites replaced and the leftovers of "
                         "crashed writes, once older than --older-than (readers planned before then may fail)")
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed")
    gc.add_argument("--runs-dir", default=None)
    gc.set_defaults(fn=cmd_gc)
    query = commands.add_parser(
        "sql", help="run a SQL query over Parquet, CSV or JSON files and print the result (or write it with --out)",
        description="Run a SQL query (DuckDB's dialect) with sluice's planner and runners. Name each table the "
                    "query reads with --table NAME=PATH, e.g. sluice sql \"select count(*) from t\" --table "
                    "t=data/events/")
    query.add_argument("query", nargs="?", help="the SQL text (or use -f FILE)")
    query.add_argument("-f", "--file", default=None,
                       help="read the SQL text from this file; or a folder of model files (name.sql, which may "
                            "read other models with {{ ref('other') }}) to run in dependency order into --out DIR/name/, "
                            "keeping models unchanged since their last commit")
    query.add_argument("--table", "-t", action="append", default=[], metavar="NAME=PATH",
                       help="a table the query reads: a Parquet file or folder (hive partitions), or a .csv/.json "
                            "file; repeat for each table")
    query.add_argument("--out", default=None, help="write the result as Parquet under this folder instead of printing "
                                                   "(with -f FOLDER: where the models' outputs go)")
    query.add_argument("--mode", default="error", choices=["error", "overwrite", "append"],
                       help="with --out: what to do when the folder holds data (default error)")
    query.add_argument("--explain", action="store_true", help="print the plans instead of running the query")
    query.add_argument("--max-rows", type=int, default=50, help="rows to print (default 50)")
    query.add_argument("--runner", choices=["local", "ray"], default=None)
    query.set_defaults(fn=cmd_sql)
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
        return getattr(exc, "exit_status", 1)


if __name__ == "__main__":
    sys.exit(main())

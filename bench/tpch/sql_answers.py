"""The 22 TPC-H query texts through sluice.sql, checked against the official answers of DuckDB's tpch extension.

    # once, in an environment whose duckdb matches the duckdb-extension-tpch wheel (e.g. both 1.5.5):
    python bench/tpch/sql_answers.py make /tmp/sf1 --scale 1
    # then, with sluice installed:
    python bench/tpch/sql_answers.py check /tmp/sf1 [--queries DIR] [--runner ray] [--staged]

`make` runs DuckDB's own dbgen (the answers hold for its data, not tpchgen-cli's), writes each table
as <dir>/<table>.parquet, and `tpch_answers()` for that scale (it has 0.01, 0.1 and 1) as <dir>/answers/qNN.csv. `check` runs
each text (bench/tpch/sql/ by default) and compares it with the answer in order: numbers with a
relative tolerance of 1e-6 (the answers are printed rounded), everything else as text.
"""

from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import sys
import time
from pathlib import Path

TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")
HERE = Path(__file__).resolve().parent


def make(out: str, scale: float) -> None:
    import duckdb
    import duckdb_extension_tpch  # the extension as a wheel: pip install duckdb-extension-tpch
    extension = glob.glob(os.path.join(os.path.dirname(duckdb_extension_tpch.__file__), "extensions", "*", "*"))[0]
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{extension}'")
    con.execute(f"CALL dbgen(sf={scale})")
    os.makedirs(os.path.join(out, "answers"), exist_ok=True)
    for table in TABLES:
        con.execute(f"COPY {table} TO '{os.path.join(out, table)}.parquet' (FORMAT parquet)")
    answers = con.execute("SELECT query_nr, answer FROM tpch_answers() WHERE scale_factor = ?", [scale]).fetchall()
    if not answers:
        sys.exit(f"tpch_answers() has no answers for scale {scale}; it has them for 0.01, 0.1 and 1.")
    for number, answer in answers:
        Path(out, "answers", f"q{number:02d}.csv").write_text(answer)


def _same(actual, expected: str) -> bool:
    if actual is None:
        return expected in ("", "NULL")
    if isinstance(actual, (int, float)) or hasattr(actual, "as_tuple"):
        try:
            return math.isclose(float(actual), float(expected), rel_tol=1e-6, abs_tol=0.011)
        except ValueError:
            return False
    return str(actual) == expected


def check(data: str, queries: str, runner: str | None, staged: bool) -> int:
    import sluice as sl
    if runner:
        sl.configure(runner=runner)
    if staged:
        sl.configure(fuse_fraction=0)
    tables = {t: os.path.join(data, f"{t}.parquet") for t in TABLES}
    failed = 0
    for path in sorted(Path(queries).glob("q*.sql")):
        started = time.perf_counter()
        header, *rows = csv.reader(open(Path(data, "answers", f"{path.stem}.csv")), delimiter="|")
        rows = [row or [""] * len(header) for row in rows]  # a row of one null prints as an empty line
        try:
            actual = [list(r.values()) for r in sl.sql(path.read_text(), tables).to_arrow().to_pylist()]
        except sl.SluiceError as error:
            print(f"{path.stem} FAILED {type(error).__name__}: {error}")
            failed += 1
            continue
        same = len(actual) == len(rows) and all(
            len(a) == len(e) and all(_same(x, y) for x, y in zip(a, e)) for a, e in zip(actual, rows))
        failed += not same
        print(f"{path.stem} {'matches' if same else 'DIFFERS'} ({len(actual)} rows, {time.perf_counter() - started:.1f}s)")
    print(f"{22 - failed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("make")
    made.add_argument("dir")
    made.add_argument("--scale", type=float, default=1)
    checked = commands.add_parser("check")
    checked.add_argument("dir")
    checked.add_argument("--queries", default=str(HERE / "sql"))
    checked.add_argument("--runner", choices=["local", "ray"], default=None)
    checked.add_argument("--staged", action="store_true", help="no fusion: exchanges, broadcast joins")
    args = parser.parse_args()
    if args.command == "make":
        make(args.dir, args.scale)
        return 0
    return check(args.dir, args.queries, args.runner, args.staged)


if __name__ == "__main__":
    sys.exit(main())

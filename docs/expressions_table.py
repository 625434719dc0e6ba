"""Regenerate docs/expressions.md: Polars' expression functions, and which of them sluice has.

Run `python docs/expressions_table.py` after adding a function to sluice/expr/library.py; RENAMES and NOTES
below hold what introspection cannot tell (a function under another name, a semantic difference).
"""

import pathlib

import polars as pl
import sluice as sl
from sluice import col

e = pl.col("a")
s = col("a")
NAMESPACES = [("Expr", pl.Expr, s, ""), ("str", e.str, s.str, "str."), ("dt", e.dt, s.dt, "dt."),
              ("list", e.list, s.list, "list."), ("struct", e.struct, s.struct, "struct.")]
RENAMES = {
    "Expr": {"add": "`+`", "sub": "`-`", "mul": "`*`", "truediv": "`/`", "floordiv": "`//`", "mod": "`%`",
             "neg": "unary `-`", "and_": "`&`", "or_": "`\\|`", "not_": "`~`", "eq": "`==`", "ne": "`!=`",
             "lt": "`<`", "le": "`<=`", "gt": "`>`", "ge": "`>=`", "is_between": "`between`",
             "n_unique": "`count_distinct`", "implode": "`collect_list`", "shift": "`lag` / `lead`",
             "len": "`sl.count()`"},
    "str": {"to_lowercase": "`str.lower`", "to_uppercase": "`str.upper`", "len_chars": "`str.len`"},
}
NOTES = {
    ("Expr", "round"): "half away from zero (SQL); a float is scaled, rounded and scaled back",
    ("Expr", "log"): "natural by default (DuckDB's `log` is base 10)",
    ("Expr", "pow"): "always float64, as SQL POWER",
    ("Expr", "sign"): "NaN stays NaN (DuckDB: 0)",
    ("Expr", "clip"): "null stays null; NaN stays NaN",
    ("Expr", "floor"): "an integer stays an integer",
    ("Expr", "ceil"): "an integer stays an integer",
    ("Expr", "sum"): "null over no non-null values (SQL)",
    ("Expr", "hash"): "deterministic across runs and runners",
    ("Expr", "is_nan"): "false for integers",
    ("str", "replace"): "every occurrence (Polars replaces the first)",
    ("str", "pad_start"): "a longer string is kept whole (SQL lpad cuts it)",
    ("str", "pad_end"): "a longer string is kept whole (SQL rpad cuts it)",
    ("str", "extract"): "null when nothing matches (DuckDB: '')",
    ("str", "strip_chars"): "also `str.strip`; whitespace by default",
    ("str", "strip_chars_start"): "also `str.lstrip`",
    ("str", "strip_chars_end"): "also `str.rstrip`",
    ("str", "to_date"): "strict: a row that does not parse is a bad record",
    ("str", "to_datetime"): "strict: a row that does not parse is a bad record",
    ("str", "slice"): "0-based",
    ("dt", "weekday"): "ISO: Monday 1 .. Sunday 7",
    ("dt", "week"): "ISO week",
    ("dt", "ordinal_day"): "also `dt.day_of_year`",
    ("dt", "epoch"): "integer, rounded down",
    ("dt", "strftime"): "also `dt.to_string`",
    ("dt", "offset_by"): "calendar-aware, as SQL date + INTERVAL",
    ("list", "get"): "0-based; null past the end",
    ("list", "sum"): "null for a list of no non-null values (SQL)",
    ("list", "join"): "nulls skipped",
    ("list", "sort"): "nulls last (SQL)",
    ("list", "n_unique"): "non-null elements, as COUNT(DISTINCT)",
    ("list", "any"): "null for no non-null elements (SQL bool_or)",
    ("list", "all"): "null for no non-null elements (SQL bool_and)",
    ("str", "find"): "a character index (Polars counts bytes)",
    ("Expr", "replace"): "maps values; others kept",
    ("Expr", "eq_missing"): "SQL IS NOT DISTINCT FROM",
    ("Expr", "ne_missing"): "SQL IS DISTINCT FROM",
}
EXTRA = [("Expr", "`rolling_count`", "window function: non-null values in the window"),
         ("Expr", "`sl.coalesce(...)`", "Polars' `pl.coalesce`"), ("Expr", "`sl.when(...)`", "Polars' `pl.when`"),
         ("Expr", "`row_number()`, `rank()`, `dense_rank()`", "window functions, with `.over(...)`"),
         ("str", "`str.like(pattern)`", "SQL LIKE"), ("str", "`str.concat(*others)`", "Polars' `pl.concat_str`"),
         ("str", "`str.strip`, `str.lstrip`, `str.rstrip`", "strip_chars, strip_chars_start, strip_chars_end"),
         ("dt", "`dt.day_of_year`", "dt.ordinal_day")]

lines = []
total_has = total = 0
sections = []
for ns, pobj, sobj, prefix in NAMESPACES:
    names = [m for m in dir(pobj) if not m.startswith("_")]
    if ns == "Expr":
        namespaces = ("str", "dt", "list", "struct", "arr", "cat", "name", "meta", "bin", "ext")
        names = [m for m in names if m not in namespaces]
    rows, has = [], 0
    for name in names:
        renamed = RENAMES.get(ns, {}).get(name)
        if renamed:
            cell = renamed
        elif hasattr(sobj, name):
            cell = f"`{prefix}{name}`"
        else:
            cell = ""
        has += bool(cell)
        rows.append(f"| `{name}` | {'yes' if cell else 'no'} | {cell} | {NOTES.get((ns, name), '')} |")
    total_has += has
    total += len(names)
    sections.append((ns, names, rows, has))

out = ["# Expression functions", "",
       "sluice's expressions follow Polars' names; this table takes Polars' expression namespaces "
       f"(Polars {pl.__version__}: the methods of `pl.Expr` and of its `.str`, `.dt`, `.list` and `.struct` "
       "namespaces) as the reference list and says which ones sluice has, under which name, and where its "
       "semantics differ. Where Polars and SQL differ, sluice follows SQL (DuckDB) unless a note says otherwise; "
       "the docstrings in `src/sluice/expr/library.py` say which, and "
       "`tests/integration/test_duckdb_oracle_library.py` checks each family against DuckDB.", "",
       f"**sluice has {total_has} of these {total} functions.** "
       + ", ".join(f"`{'pl.Expr' if ns == 'Expr' else '.' + ns}`: {has} of {len(names)}"
                   for ns, names, _, has in sections) + ".", "",
       "Every function is checked when the plan is built: a function given the wrong kind of column "
       "(`col(\"name\").sqrt()` on a string) fails before any data is read, naming the column, its type and the fix.",
       ""]
out += ["## Functions sluice has that are not Polars expression methods", "", "| sluice | what |", "|---|---|"]
out += [f"| {name} | {what} |" for _, name, what in EXTRA]
out.append("")
titles = {"Expr": "`pl.Expr` (top-level methods)", "str": "`.str`", "dt": "`.dt`", "list": "`.list`",
          "struct": "`.struct`"}
for ns, names, rows, has in sections:
    out += [f"## {titles[ns]}: {has} of {len(names)}", "", "| Polars | sluice has | sluice name | note |",
            "|---|---|---|---|"] + rows + [""]
(pathlib.Path(__file__).parent / "expressions.md").write_text("\n".join(out) + "\n")
print(total_has, total, [(ns, has, len(n)) for ns, n, _, has in sections])

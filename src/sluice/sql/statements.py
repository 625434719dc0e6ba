"""The statements of one SQL text: views made and dropped along the way, files written with COPY ... TO, and
the one query it returns.

The official TPC-H Q15 text is `CREATE VIEW revenue0 AS ...; SELECT ...; DROP VIEW revenue0;`:
a view here is a name for a lazy Dataset, known to the statements after it.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from ..api.dataset import Dataset
from ..io.memory import ArrowSource
from ..plan.logical import Scan
from .front import Query, normalized
from .planner import Planner
from .relations import restart_names


def run_statements(query: Query, statements: list[exp.Expression], tables: dict[str, Dataset], check_tables,
                   qualify_statement) -> Dataset:
    restart_names()
    tables = dict(tables)
    result: Dataset | None = None
    for statement in statements:
        if isinstance(statement, exp.Create) and (statement.args.get("kind") or "").upper() in ("VIEW", "TABLE"):
            target = statement.this
            name = normalized(target.this.name if isinstance(target, exp.Schema) else target.name)
            body = statement.expression
            if body is None:
                raise query.error(f"CREATE {statement.args['kind']} {name} needs AS SELECT ...", statement)
            view = plan_query(query, body, tables, check_tables, qualify_statement)
            if isinstance(target, exp.Schema):
                columns = [normalized(c.name) for c in target.expressions]
                if len(columns) != len(view.columns):
                    raise query.error(f"{name} names {len(columns)} columns but its query has {len(view.columns)}",
                                      target)
                view = view.rename(dict(zip(view.columns, columns)))
            tables[name] = view
        elif isinstance(statement, exp.Copy):
            written = copy_to(query, statement, tables, check_tables, qualify_statement)
            result = written if result is None or getattr(result, "_sql_copy", False) else result
        elif isinstance(statement, exp.Drop):
            for table in statement.args.get("tables") or ([statement.this] if statement.this else []):
                tables.pop(normalized(table.name), None)
        elif isinstance(statement, exp.Query):
            if result is not None and not getattr(result, "_sql_copy", False):
                raise query.error("The text holds more than one query", statement,
                                  "Pass one SELECT (views made with CREATE VIEW may come before it).")
            result = plan_query(query, statement, tables, check_tables, qualify_statement)
        else:
            raise query.error(f"{statement.key.upper()} statements are not supported", statement,
                              "sluice.sql runs SELECT queries, with CREATE VIEW / DROP VIEW around them.")
    if result is None:
        raise query.error_at("The text holds no SELECT query", None, None, "Add the SELECT whose rows you want.")
    return result


def plan_query(query: Query, statement: exp.Expression, tables: dict[str, Dataset], check_tables,
               qualify_statement) -> Dataset:
    check_tables(statement, set(tables), query)
    name_unnamed_outputs(statement)
    explicit = {normalized(p.alias) for p in _top_select(statement).expressions if isinstance(p, exp.Alias)} \
        if _top_select(statement) is not None else set()
    used = {normalized(t.name) for t in statement.find_all(exp.Table)} & set(tables)
    qualified = qualify_statement(statement, {name: tables[name].schema for name in used}, query)
    dataset = Planner(query, tables).plan(qualified)
    return _with_source_case(dataset, [tables[name].schema for name in used], explicit)


def _with_source_case(dataset: Dataset, schemas, explicit: set[str]) -> Dataset:
    """Output columns that are a table's column keep that column's spelling (`UserID`, not `userid`): unquoted
    names are case-insensitive in DuckDB's dialect, and the planner reads them in lower case."""
    spellings: dict[str, set[str]] = {}
    for schema in schemas:
        for name in schema.names:
            spellings.setdefault(normalized(name), set()).add(name)
    names = dataset.columns
    renames = {}
    for name in names:
        found = spellings.get(name, set())
        if name in explicit or len(found) != 1:
            continue
        original = next(iter(found))
        if original != name and original not in names:
            renames[name] = original
    return dataset.rename(renames) if renames else dataset


def _top_select(statement: exp.Expression) -> exp.Select | None:
    while isinstance(statement, (exp.Union, exp.Intersect, exp.Except)):
        statement = statement.this
    return statement if isinstance(statement, exp.Select) else None


def name_unnamed_outputs(statement: exp.Expression) -> None:
    """An output column without AS is named by its text, `count(*)` -> "count_star()", as DuckDB names it
    (qualify would name it _col_1)."""
    select = _top_select(statement)
    if select is None:
        return
    for projection in list(select.expressions):
        if isinstance(projection, (exp.Alias, exp.Column, exp.Star)) or projection.find(exp.Star) and not isinstance(
                projection, exp.Count):
            continue
        text = "count_star()" if isinstance(projection, exp.Count) and isinstance(projection.this, exp.Star) \
            else projection.sql(dialect="duckdb").lower()
        if isinstance(projection, exp.Binary):
            text = f"({text})"
        projection.replace(exp.alias_(projection.copy(), text, quoted=True))


_FORMATS = ("parquet", "csv", "json")
_MODES = {"overwrite": "overwrite", "overwrite_or_ignore": "overwrite", "append": "append"}


def _output_name(dataset: Dataset, name: str) -> str:
    """A column of the query's output named in an option (case-insensitively, as SQL names are)."""
    matches = [c for c in dataset.columns if normalized(c) == normalized(name)]
    return matches[0] if matches else name


def copy_to(query: Query, statement: exp.Copy, tables: dict[str, Dataset], check_tables, qualify_statement) -> Dataset:
    """COPY (SELECT ...) TO 'path' [(FORMAT parquet|csv|json, PARTITION_BY (cols), OVERWRITE | APPEND)]: runs the
    query now and writes it through the commit protocol (staged files, one commit); returns what was written."""
    if statement.args.get("kind"):
        raise query.error("COPY ... FROM is not supported", statement, "Read files with tables={'name': 'path'}.")
    files = statement.args.get("files") or []
    if len(files) != 1 or not isinstance(files[0], exp.Literal) or not files[0].is_string:
        raise query.error("COPY ... TO needs one destination path in quotes", statement, "e.g. TO 'out/events/'.")
    source = statement.this
    body = source.this if isinstance(source, exp.Subquery) else exp.select("*").from_(source.copy())
    dataset = plan_query(query, body, tables, check_tables, qualify_statement)
    fmt, partition_by, mode = "parquet", None, "error"
    for param in statement.args.get("params") or []:
        name = param.this.name.lower()
        value = param.args.get("expression")
        if name == "format":
            fmt = value.name.lower() if value is not None else ""
            if fmt not in _FORMATS:
                raise query.error(f"COPY format {fmt!r} is not supported", param, "Use parquet, csv or json.")
        elif name == "partition_by":
            while isinstance(value, exp.Paren):
                value = value.this
            columns = value.expressions if isinstance(value, exp.Tuple) else [value]
            partition_by = [_output_name(dataset, c.name) for c in columns]
        elif name in _MODES:
            mode = _MODES[name]
        else:
            raise query.error(f"COPY option {name.upper()} is not supported", param,
                              "Options: FORMAT, PARTITION_BY, OVERWRITE, APPEND.")
    writer = {"parquet": dataset.write_parquet, "csv": dataset.write_csv, "json": dataset.write_json}[fmt]
    written = writer(files[0].this, partition_by=partition_by, mode=mode)
    summary = pa.table({"path": [written.path], "files": [len(written.files)], "rows": [written.rows],
                        "bytes": [written.bytes]})
    result = Dataset(Scan(ArrowSource(summary, "COPY")))
    result._sql_copy = True
    return result

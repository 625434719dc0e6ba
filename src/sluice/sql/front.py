"""The SQL front end: parse a query with sqlglot, check its table names, and qualify it.

Parsing uses DuckDB's dialect (its NULL ordering and functions are what users of SQL on
Parquet expect). `qualify` (sqlglot's optimizer pass) then gives every column its table
alias, expands `*`, and names every projection, against the schemas of the tables the
query may read. Every error here is a `SqlError` naming the line, the column and the text at
fault, with close matches for an unknown table or column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from ..errors import SqlError, close_matches

try:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import OptimizeError, ParseError
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.schema import MappingSchema
except ImportError as missing:  # pragma: no cover - the `sql` extra is not installed
    raise SqlError("sluice.sql needs sqlglot, the SQL parser: pip install 'sluice[sql]'.") from missing

DIALECT = "duckdb"


@dataclass
class Query:
    """The text being planned, for error messages that point into it."""

    text: str

    def error(self, problem: str, node: exp.Expression | None = None, fix: str = "") -> SqlError:
        line, column = position(node) if node is not None else (None, None)
        return self.error_at(problem, line, column, fix)

    def error_at(self, problem: str, line: int | None, column: int | None, fix: str = "") -> SqlError:
        where = f" (line {line}, column {column})" if line is not None else ""
        message = f"{problem}{where}.{' ' + fix if fix else ''}"
        if line is not None:
            lines = self.text.splitlines()
            if 1 <= line <= len(lines):
                shown = lines[line - 1]
                message += f"\n    {shown}\n    {' ' * max(0, (column or 1) - 1)}^"
        return SqlError(message, line, column)


def position(node: exp.Expression) -> tuple[int | None, int | None]:
    """(line, column) of a node: sqlglot keeps token positions on identifiers and literals."""
    for candidate in [node, *node.walk()] if node is not None else []:
        meta = getattr(candidate, "_meta", None) or {}
        if "line" in meta:
            end_col = meta.get("col")
            start, end = meta.get("start"), meta.get("end")
            if end_col is not None and start is not None and end is not None:
                return meta["line"], max(1, end_col - (end - start))
            return meta["line"], end_col
    return None, None


def parse(text: str) -> list[exp.Expression]:
    query = Query(text)
    try:
        statements = [s for s in sqlglot.parse(text, read=DIALECT) if s is not None]
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        raise query.error_at(f"SQL syntax error: {detail.get('description', str(error))} near "
                             f"{detail.get('highlight', '')!r}", detail.get("line"), detail.get("col")) from None
    if not statements:
        raise query.error_at("The SQL text holds no statement", None, None, "Pass a SELECT query.")
    return statements


def sqlglot_type(dtype: pa.DataType) -> str:
    """The SQL type name for an Arrow type (qualify only needs the names; the type only guides it)."""
    if pa.types.is_dictionary(dtype):
        return sqlglot_type(dtype.value_type)
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    if pa.types.is_integer(dtype):
        return "BIGINT"
    if pa.types.is_floating(dtype):
        return "DOUBLE"
    if pa.types.is_decimal(dtype):
        return f"DECIMAL({dtype.precision}, {dtype.scale})"
    if pa.types.is_date(dtype):
        return "DATE"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMP"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "VARCHAR"
    return "VARCHAR"


def normalized(name: str) -> str:
    """How an unquoted identifier reads in DuckDB's dialect: case-insensitive, kept as lower case."""
    return name.lower()


def check_tables(statement: exp.Expression, known: set[str], query: Query) -> None:
    """Refuse a table name that is neither a given table, a view made earlier in the text, nor a CTE."""
    ctes = {normalized(cte.alias_or_name) for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        if not table.name:
            continue
        name = normalized(table.name)
        if name in known or name in ctes:
            continue
        hint = close_matches(name, sorted(known | ctes))
        fix = (f"Did you mean {', '.join(repr(h) for h in hint)}? " if hint else "") + (
            f"The query can read {', '.join(sorted(known | ctes)) or 'no tables'}; pass others with "
            f"tables={{{name!r}: dataset}} (or a path), or sluice.register({name!r}, dataset).")
        raise query.error(f"Unknown table {table.name!r}", table, fix)


_UNRESOLVED = re.compile(r"Column '(?P<name>[^']*)' could not be resolved(?: for table: '(?P<table>[^']*)')?")


def qualify_statement(statement: exp.Expression, schemas: dict[str, pa.Schema], query: Query) -> exp.Expression:
    """The statement with every column qualified by its table alias and every projection named."""
    mapping = {name: {normalized(f.name): sqlglot_type(f.type) for f in schema} for name, schema in schemas.items()}
    try:
        return qualify(statement, schema=MappingSchema(mapping, dialect=DIALECT), dialect=DIALECT,
                       validate_qualify_columns=True, quote_identifiers=False, isolate_tables=False)
    except OptimizeError as error:
        raise _unresolved_column(str(error), statement, schemas, query) from None


def _unresolved_column(message: str, statement: exp.Expression, schemas: dict[str, pa.Schema], query: Query):
    found = _UNRESOLVED.search(message)
    if found is None:
        return query.error_at(f"Cannot resolve the query: {message}", None, None)
    name = found["name"]
    node = next((c for c in statement.find_all(exp.Column) if c.name == name), None)
    tables = {normalized(t.name) for t in statement.find_all(exp.Table)} & set(schemas)
    candidates = sorted({normalized(f.name) for t in tables for f in schemas[t]})
    hint = close_matches(name, candidates)
    fix = f"Did you mean {', '.join(repr(h) for h in hint)}?" if hint else (
        f"The tables it reads have the columns {', '.join(candidates)}." if candidates else "")
    return query.error(f"Unknown column {name!r}", node, fix)

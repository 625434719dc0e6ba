"""Bad SQL fails at sluice.sql() with a SqlError naming the problem, the line and column, and a way out."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import SluiceError, SqlError

pytest.importorskip("sqlglot")


@pytest.fixture
def tables():
    return {"orders": sl.from_items([{"o_id": 1, "o_total": 2.5, "o_day": "mon"}]),
            "lines": sl.from_items([{"l_order": 1, "l_qty": 3}])}


def fails(query: str, tables) -> SqlError:
    with pytest.raises(SqlError) as caught:
        sl.sql(query, tables)
    assert isinstance(caught.value, SluiceError)
    return caught.value


def test_unknown_table_names_the_place_and_close_matches(tables):
    error = fails("select o_id\nfrom ordres", tables)
    assert "Unknown table 'ordres'" in str(error) and "Did you mean 'orders'" in str(error)
    assert (error.line, error.column) == (2, 6)
    assert "sluice.register('ordres', dataset)" in str(error)


def test_unknown_column_names_the_place_and_close_matches(tables):
    error = fails("select o_id,\n       o_totl\nfrom orders", tables)
    assert "Unknown column 'o_totl'" in str(error) and "Did you mean 'o_total'" in str(error)
    assert (error.line, error.column) == (2, 8)
    assert "       ^" in str(error)


def test_unknown_function_is_named(tables):
    error = fails("select frobnicate(o_id) from orders", tables)
    assert "FROBNICATE()" in str(error) and (error.line, error.column) == (1, 8)


def test_syntax_error_points_at_the_token(tables):
    error = fails("select o_id from orders where", tables)
    assert "syntax error" in str(error).lower() and error.line == 1


def test_column_outside_group_by_is_refused(tables):
    error = fails("select o_day, sum(o_total) from orders group by o_id", tables)
    assert "o_day" in str(error) and "GROUP BY" in str(error)


def test_unsupported_right_join_says_what_to_do(tables):
    error = fails("select * from orders right join lines on o_id = l_order", tables)
    assert "RIGHT JOIN is not supported" in str(error) and "LEFT JOIN" in str(error)


def test_duplicate_output_names_are_refused(tables):
    error = fails("select o_id as x, o_total as x from orders", tables)
    assert "named 'x'" in str(error)


def test_a_window_aggregate_with_the_default_range_frame_asks_for_rows(tables):
    error = fails("select sum(o_total) over (order by o_id) as running from orders", tables)
    assert "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW" in str(error)


def test_sql_and_the_dataset_api_mix(tables):
    orders = tables["orders"].with_columns(double=sl.col("o_total") * 2)
    out = sl.sql("select o_id, double + l_qty as x from self join lines on o_id = l_order", self=orders,
                 lines=tables["lines"])
    assert out.filter(sl.col("x") > 0).to_arrow().to_pylist() == [{"o_id": 1, "x": 8.0}]


def test_explain_gives_the_plans_of_explain_and_keeps_error_positions(tables):
    query = "select o_day, count(*) as n from orders where o_total > 1 group by o_day"
    lines = sl.sql("EXPLAIN " + query, tables).to_arrow().column("plan").to_pylist()
    assert lines == sl.sql(query, tables).explain(show=False).splitlines()
    assert any("== Physical plan ==" in line for line in lines)
    assert fails("explain select nope from orders", tables).column == 16


def test_correlated_not_in_asks_for_not_exists(tables):
    error = fails("select o_id from orders o where o_id not in (select l_order from lines l where l.l_qty = o.o_id)",
                  tables)
    assert "NOT EXISTS" in str(error)


def test_a_scalar_subquery_of_several_rows_fails_the_run(tables):
    from sluice.errors import DataQualityError
    lines = sl.from_items([{"l_order": 1, "l_qty": 3}, {"l_order": 1, "l_qty": 4}])
    query = "select o_id, (select l_qty from lines where l_qty > {}) as q from orders"
    with pytest.raises(DataQualityError, match="at most one row"):
        sl.sql(query.format(0), {**tables, "lines": lines}).to_arrow()
    assert sl.sql(query.format(3), {**tables, "lines": lines}).to_arrow().to_pylist() == [{"o_id": 1, "q": 4}]
    assert sl.sql(query.format(9), {**tables, "lines": lines}).to_arrow().to_pylist() == [{"o_id": 1, "q": None}]


@pytest.mark.parametrize("query, clause", [
    ("select o_day, count(*) from orders group by rollup (o_day)", "ROLLUP"),
    ("select o_id from orders qualify row_number() over (order by o_id) = 1", "QUALIFY"),
    ("select o_id from orders limit 1 offset 1", "OFFSET"),
])
def test_clauses_the_planner_does_not_handle_are_refused_not_ignored(tables, query, clause):
    assert clause in str(fails(query, tables))


def test_output_columns_keep_the_tables_spelling():
    t = sl.from_items([{"UserID": 1, "Score": 2.0}])
    assert sl.sql("select UserID, score * 2 as doubled from t", t=t).columns == ["UserID", "doubled"]
    assert sl.sql("select * from t", t=t).columns == ["UserID", "Score"]
    assert sl.sql("select score as score from t", t=t).columns == ["score"]


def test_tables_come_from_paths_and_the_session_catalog(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)
    assert sl.sql("select sum(a) as s from t", {"t": str(path)}).to_arrow().to_pylist() == [{"s": 6}]
    sl.register("registered_t", sl.read_parquet(str(path)))
    try:
        assert sl.sql("select count(*) as n from registered_t").to_arrow().to_pylist() == [{"n": 3}]
    finally:
        from sluice.sql import unregister
        unregister("registered_t")


def test_cli_prints_the_result_and_reports_errors(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3], "b": ["x", "y", "x"]}), path)
    done = subprocess.run([sys.executable, "-m", "sluice", "sql", "select b, sum(a) as total from t group by b "
                           "order by b", "--table", f"t={path}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "total" in done.stdout and "│ x" in done.stdout and "4" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "sluice", "sql", "select c from t", "--table", f"t={path}"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "Unknown column 'c'" in bad.stderr
    out = tmp_path / "out"
    wrote = subprocess.run([sys.executable, "-m", "sluice", "sql", "select a from t where a > 1", "--table",
                            f"t={path}", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert wrote.returncode == 0, wrote.stderr
    assert sorted(pq.read_table(out).column("a").to_pylist()) == [2, 3]

"""SQL semantics that TPC-H does not reach (nulls in keys and subqueries, empty subqueries, outer joins, set
operations), each query run by sluice.sql and by DuckDB over the same small tables with nulls."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

import sluice as sl

pytest.importorskip("sqlglot")

EMP = pa.table({
    "id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    "dept": pa.array([10, 10, 20, 20, None, 30], pa.int64()),
    "name": ["ann", "bob", "cy", "dee", "eve", "fay"],
    "salary": pa.array([100.0, 200.0, 150.0, None, 80.0, 120.0]),
})
DEPT = pa.table({
    "dept_id": pa.array([10, 20, 40, None], pa.int64()),
    "title": ["eng", "ops", "empty", "nameless"],
})
NUMS = pa.table({"n": pa.array([10, 20, None], pa.int64())})

QUERIES = {
    "inner join": "select name, title from emp join dept on dept = dept_id",
    "left join keeps unmatched rows with nulls": "select name, title, dept_id from emp left join dept on dept = dept_id",
    "left join with a condition on the right side": (
        "select name, title from emp left join dept on dept = dept_id and title <> 'ops'"),
    "comma join with a residual condition": "select name, title from emp, dept where dept = dept_id and salary > 100",
    "cross join": "select count(*) as n from emp cross join dept",
    "group by with having and order": (
        "select dept, count(*) as n, sum(salary) as total, avg(salary) as mean from emp group by dept "
        "having count(*) > 0 order by dept nulls last"),
    "count distinct and count of a nullable column": (
        "select count(distinct dept) as depts, count(salary) as paid, count(*) as all_rows from emp"),
    "aggregate of an empty input is one row of nulls": "select sum(salary) as s, count(*) as n from emp where id > 99",
    "expression over aggregates": "select dept, sum(salary) / count(*) as per_head from emp group by dept",
    "group by an expression used in select": (
        "select salary > 100 as rich, count(*) as n from emp group by salary > 100"),
    "in subquery": "select name from emp where dept in (select dept_id from dept)",
    "not in subquery with a null returns nothing": "select name from emp where dept not in (select dept_id from dept)",
    "not in subquery without nulls skips null subjects": (
        "select name from emp where dept not in (select dept_id from dept where dept_id is not null)"),
    "exists correlated": "select name from emp e where exists (select * from dept d where d.dept_id = e.dept)",
    "not exists correlated": "select name from emp e where not exists (select * from dept d where d.dept_id = e.dept)",
    "exists with a non-equality correlation": (
        "select name from emp e where exists (select * from emp o where o.dept = e.dept and o.id <> e.id)"),
    "not exists with a non-equality correlation": (
        "select name from emp e where not exists (select * from emp o where o.dept = e.dept and o.salary > e.salary)"),
    "exists with two non-equality correlations (numbered rows)": (
        "select name from emp e where exists (select * from emp o where o.dept = e.dept and o.id <> e.id "
        "and o.salary > e.salary)"),
    "not exists with two non-equality correlations (numbered rows)": (
        "select name from emp e where not exists (select * from emp o where o.dept = e.dept and o.id <> e.id "
        "and o.salary < e.salary)"),
    "exists with only a non-equality correlation": (
        "select name from emp e where exists (select * from dept d where d.dept_id > e.dept)"),
    "uncorrelated exists over an empty subquery": "select name from emp where exists (select * from dept where 1 = 0)",
    "scalar subquery": "select name from emp where salary > (select avg(salary) from emp)",
    "correlated scalar subquery": (
        "select name from emp e where salary >= (select max(salary) from emp i where i.dept = e.dept)"),
    "correlated count subquery is 0 where nothing matches": (
        "select title, (select count(*) from emp where emp.dept = dept.dept_id) as staff from dept"),
    "scalar subquery in select": "select name, salary - (select min(salary) from emp) as above_min from emp",
    "a join condition repeated in every branch of an OR": (
        "select e.name, d.title from emp e, dept d where (e.dept = d.dept_id and d.title = 'eng') "
        "or (e.dept = d.dept_id and e.salary > 140) or (d.dept_id = e.dept and e.name = 'eve')"),
    "an OR across tables with a branch that does not filter each table": (
        "select e.name, d.title from emp e, dept d where e.dept = d.dept_id and "
        "((d.title = 'ops' and e.salary > 100) or e.id = 1)"),
    "outputs without AS are named as DuckDB names them": (
        "select dept, count(*), sum(salary), dept + 1 from emp group by dept"),
    "abs, round and string concatenation": (
        "select name || '-' || title as label, concat(name, null, title) as joined, abs(0 - salary) as a, round(salary / 7, 2) as r, "
        "round(salary / 7) as r0 from emp join dept on dept = dept_id"),
    "in list and between": "select name from emp where id in (1, 3, 5) or salary between 110 and 130",
    "case with a simple operand": (
        "select name, case dept when 10 then 'ten' when 20 then 'twenty' else 'other' end as d from emp"),
    "union": "select dept as n from emp union select n from nums",
    "union all": "select dept as n from emp union all select n from nums",
    "intersect": "select dept as n from emp intersect select n from nums",
    "except": "select dept as n from emp except select n from nums",
    "cte and derived table": (
        "with rich as (select * from emp where salary > 100) "
        "select t.dept, t.c from (select dept, count(*) as c from rich group by dept) as t where t.c >= 1"),
    "distinct": "select distinct dept from emp",
    "order by an expression not selected, then limit": "select name from emp order by salary desc nulls last, id limit 3",
    "select star with a table qualifier": "select d.* from dept d where d.dept_id > 10",
    "ranking window functions": (
        "select name, row_number() over (partition by dept order by id) as rn, "
        "rank() over (order by dept) as r, dense_rank() over (order by dept desc) as dr from emp"),
    "lag and lead": "select id, lag(name) over (order by id) as prev, lead(id, 2, 0) over (order by id) as nxt from emp",
    "aggregate over a partition": "select name, sum(salary) over (partition by dept) as dept_total from emp",
    "running and rolling frames": (
        "select id, sum(salary) over (order by id rows between unbounded preceding and current row) as running, "
        "avg(salary) over (partition by dept order by id rows between 1 preceding and current row) as moving "
        "from emp"),
}

ORDERED = {"group by with having and order", "order by an expression not selected, then limit"}


@pytest.fixture(scope="module")
def duck():
    con = duckdb.connect()
    for name, table in (("emp", EMP), ("dept", DEPT), ("nums", NUMS)):
        con.register(name, table)
    yield con
    con.close()


def _rows(table: pa.Table, ordered: bool):
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return rows if ordered else sorted(rows, key=repr)


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_matches_duckdb(name, duck):
    query = QUERIES[name]
    tables = {"emp": sl.from_arrow(EMP), "dept": sl.from_arrow(DEPT), "nums": sl.from_arrow(NUMS)}
    actual = sl.sql(query, tables).to_arrow()
    expected = duck.sql(query).to_arrow_table()
    assert actual.column_names == expected.column_names
    assert _rows(actual, name in ORDERED) == _rows(expected, name in ORDERED)

"""Subqueries, decorrelated into joins.

- `EXISTS (...)` / `NOT EXISTS (...)`: a semi / anti join on the subquery's equality
  correlations (`inner.k = outer.k`). One more comparison of an inner and an outer value
  (TPC-H Q21's `l2.l_suppkey <> l1.l_suppkey`) compares the outer value with the min and max
  of the inner one per key. Any other correlations are checked on the inner join of numbered
  outer rows with the subquery, and the numbers of the rows that found a match are what the
  semi / anti join keeps or drops.
- `x IN (...)`: a semi join on x; `x NOT IN (...)`: an anti join that, as SQL says, keeps no
  row whose x is null, and no row at all when the subquery returns a null.
- A scalar subquery: a one-row aggregate is cross joined; any other uncorrelated one is left
  joined on a constant; a correlated aggregate is grouped by its correlation keys (over the
  rows whose keys the outer query has) and left joined on them (COUNT gives 0, not null,
  where no row matched).
"""

from __future__ import annotations

from sqlglot import exp

from ..expr.tree import Expr, col, row_number
from .expressions import aggregates_found, sql_key
from .relations import Rel, fresh, join_rels
from .scopes import free_tables, has_subquery, source_aliases


def apply_conditions(planner, rel: Rel, conditions: list[exp.Expression], local: set[str],
                     replaced: dict[str, Expr] | None = None) -> Rel:
    """Filter `rel` by each condition (conjuncts of WHERE or HAVING), joining in the subqueries they hold."""
    replaced = dict(replaced or {})
    for condition in conditions:
        negate = isinstance(condition, exp.Not)
        inner = condition.this if negate else condition
        while isinstance(inner, exp.Paren):
            inner = inner.this
        if isinstance(inner, exp.Exists):
            rel = exists(planner, rel, inner.this, negate)
        elif isinstance(inner, exp.In) and inner.args.get("query") is not None:
            rel = in_subquery(planner, rel, inner, negate, replaced)
        else:
            if has_subquery(condition):
                rel, replaced = with_scalar_subqueries(planner, rel, [condition], replaced)
            rel = rel.filter(planner.translate(rel, condition, replaced, "WHERE"))
    return rel


def _query_of(node: exp.Expression) -> exp.Expression:
    return node.this if isinstance(node, exp.Subquery) else node


def _split_correlations(planner, correlations, inner_local: set[str]):
    """Equalities `outer side = inner side` (as (outer, inner) node pairs), and the other correlations."""
    pairs, residual = [], []
    for condition in correlations:
        if isinstance(condition, exp.EQ):
            left, right = free_tables(condition.this), free_tables(condition.expression)
            if left and right and left <= inner_local and not right & inner_local:
                pairs.append((condition.expression, condition.this))
                continue
            if left and right and right <= inner_local and not left & inner_local:
                pairs.append((condition.this, condition.expression))
                continue
        residual.append(condition)
    return pairs, residual


def _simple(planner, select: exp.Expression, what: str) -> exp.Select:
    if not isinstance(select, exp.Select) or any(select.args.get(k) for k in ("group", "having", "limit",
                                                                                "distinct", "order")):
        raise planner.query.error(f"A correlated {what} subquery with GROUP BY, HAVING, DISTINCT, ORDER BY or "
                                  f"LIMIT is not supported", select)
    return select


def exists(planner, rel: Rel, select: exp.Expression, negate: bool,
           extra: tuple[exp.Expression, exp.Expression] | None = None) -> Rel:
    """EXISTS / NOT EXISTS (and a correlated IN, whose `extra` pair is (outer value, inner projection))."""
    how = "anti" if negate else "semi"
    select = _query_of(select)
    if not free_tables(select) and extra is None:
        return join_rels(rel, Rel(planner.plan(select)), [], how)
    select = _simple(planner, select, "EXISTS")
    sub, correlations = planner.from_where(select, correlated_ok=True)
    inner_local = set(source_aliases(select))
    pairs, residual = _split_correlations(planner, correlations, inner_local)
    if extra is not None:
        pairs.append(extra)
    if not residual:
        translated = [(planner.translate(rel, outer, what="a correlation"),
                       planner.translate(sub, inner, what="a correlation")) for outer, inner in pairs]
        return join_rels(rel, sub, translated, how)
    bound = _bound_comparison(residual, inner_local)
    if bound is not None:
        return _exists_by_bounds(planner, rel, sub, pairs, bound, how)
    return _exists_with_residual(planner, rel, sub, inner_local, pairs, residual, how)


# (inner OP outer) holds for some inner row <=> (bound OP outer) for the inner rows' min or max
_BOUNDS = {exp.NEQ: ("min", "max"), exp.LT: ("min",), exp.LTE: ("min",), exp.GT: ("max",), exp.GTE: ("max",)}
_MIRROR = {exp.NEQ: exp.NEQ, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.GT: exp.LT, exp.GTE: exp.LTE}


def _bound_comparison(residual, inner_local: set[str]):
    """(comparison type, inner side, outer side) when the only non-equality correlation is one comparison of
    an inner expression with an outer one, e.g. TPC-H Q21's l2.l_suppkey <> l1.l_suppkey."""
    if len(residual) != 1 or type(residual[0]) not in _BOUNDS:
        return None
    condition = residual[0]
    left, right = free_tables(condition.this), free_tables(condition.expression)
    if left and left <= inner_local and not right & inner_local:
        return type(condition), condition.this, condition.expression
    if right and right <= inner_local and not left & inner_local:
        return _MIRROR[type(condition)], condition.expression, condition.this
    return None


def _exists_by_bounds(planner, rel: Rel, sub: Rel, pairs, bound, how: str) -> Rel:
    """EXISTS (... AND inner OP outer): group the subquery by its equality keys, keep the min and max of the
    inner side, and compare those with the outer side: no row numbering, no join of every pair."""
    from ..expr.tree import BinaryOp
    kind, inner_node, outer_node = bound
    ops = {exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
    inner_value = planner.translate(sub, inner_node, what="a correlation")
    keys = [fresh("corr") for _ in pairs]
    stats = {fn: fresh(fn) for fn in _BOUNDS[kind]}
    keyed = sub.dataset.with_columns(*[planner.translate(sub, i, what="a correlation").alias(k)
                                       for (_, i), k in zip(pairs, keys)])
    aggs = [getattr(inner_value, fn)().alias(name) for fn, name in stats.items()]
    grouped = keyed.group_by(*keys).agg(*aggs) if keys else keyed.agg(*aggs)
    outer = [planner.translate(rel, o, what="a correlation") for o, _ in pairs]
    columns = rel.names
    joined = join_rels(rel, Rel(grouped), [(o, col(k)) for o, k in zip(outer, keys)], "left" if keys else "cross")
    outer_value = planner.translate(joined, outer_node, what="a correlation")
    found = None
    for name in stats.values():
        test = BinaryOp(ops[kind], col(name), outer_value)
        found = test if found is None else found | test
    found = found.fill_null(False)
    kept = joined.filter(found if how == "semi" else ~found)
    return rel.with_dataset(kept.dataset.select(*columns))


def _exists_with_residual(planner, rel: Rel, sub: Rel, inner_local: set[str], pairs, residual, how: str) -> Rel:
    row = fresh("row")
    numbered = rel.with_dataset(rel.dataset.with_columns(row_number().over(order_by=rel.names).alias(row)))
    prefix = fresh("sub") + "."
    renamed = Rel(sub.dataset.select(*[col(n).alias(prefix + n) for n in sub.names]),
                  {prefix + k: prefix + v for k, v in sub.aliases.items()})

    def resolver(target: Rel):
        def resolve(column: exp.Column) -> Expr:
            name = f"{column.table}.{column.name}"
            actual = target.column(prefix + name if column.table in inner_local else name)
            if actual is None:
                raise planner.query.error(f"Column {column.sql()} is not in scope here", column)
            return col(actual)
        return resolve

    from .expressions import ExpressionTranslator
    translate = lambda target, node: ExpressionTranslator(planner.query, resolver(target))(node)  # noqa: E731
    translated = [(translate(numbered, outer), translate(renamed, inner)) for outer, inner in pairs]
    candidates = join_rels(numbered, renamed, translated, "inner" if translated else "cross")
    for condition in residual:
        candidates = candidates.filter(translate(candidates, condition))
    matched = Rel(candidates.dataset.select(row))
    kept = join_rels(numbered, matched, [(col(row), col(row))], how)
    return kept.with_dataset(kept.dataset.drop(row))


def in_subquery(planner, rel: Rel, node: exp.In, negate: bool, replaced: dict[str, Expr]) -> Rel:
    query = _query_of(node.args["query"])
    subject = node.this
    if free_tables(query):
        if negate:
            raise planner.query.error("A correlated NOT IN subquery is not supported", node,
                                      "Write NOT EXISTS (SELECT ... WHERE inner = outer AND ...), which has no "
                                      "surprises with nulls.")
        select = _simple(planner, query, "IN")
        if len(select.expressions) != 1:
            raise planner.query.error("An IN subquery must select one column", select)
        projection = select.expressions[0]
        return exists(planner, rel, select, negate,
                      (subject, projection.this if isinstance(projection, exp.Alias) else projection))
    sub = planner.plan(query)
    if len(sub.columns) != 1:
        raise planner.query.error(f"An IN subquery must select one column; this one selects {len(sub.columns)}",
                                  node.args["query"])
    value = planner.translate(rel, subject, replaced, "IN")
    inner = col(sub.columns[0])
    if not negate:
        return join_rels(rel, Rel(sub), [(value, inner)], "semi")
    rel = rel.filter(value.is_not_null())
    rel = join_rels(rel, Rel(sub), [(value, inner)], "anti")
    nulls = fresh("nulls")
    from ..expr.tree import count
    flag = sub.filter(inner.is_null()).agg(**{nulls: count()})
    return rel.with_dataset(rel.dataset.join(flag, how="cross").filter(col(nulls) == 0).drop(nulls))


def _only_outer_keys(planner, rel: Rel, sub: Rel, pairs) -> Rel:
    """The subquery's rows whose correlation keys occur in the outer query (in the one FROM table the keys
    come from, with its own filters, when there is one): the groups it aggregates next are then only those
    the outer rows may look up (TPC-H Q17 averages the lines of 200 parts, not of every part)."""
    names = [fresh("outer") for _ in pairs]
    tables = set().union(*(free_tables(o) for o, _ in pairs))
    source = rel.bases[next(iter(tables))] if len(tables) == 1 and next(iter(tables)) in rel.bases else rel
    outer_keys = source.dataset.select(*[planner.translate(source, o, what="a correlation").alias(n)
                                         for (o, _), n in zip(pairs, names)])
    inner = [planner.translate(sub, i, what="a correlation") for _, i in pairs]
    return join_rels(sub, Rel(outer_keys), [(e, col(n)) for e, n in zip(inner, names)], "semi")


def top_level_subqueries(nodes: list[exp.Expression]) -> list[exp.Subquery]:
    found = []

    def visit(node):
        if isinstance(node, exp.Subquery):
            found.append(node)
            return
        if isinstance(node, (exp.Exists, exp.Select)) or (isinstance(node, exp.In) and node.args.get("query")):
            return
        for child in node.iter_expressions():
            visit(child)

    for node in nodes:
        visit(node)
    return found


def with_scalar_subqueries(planner, rel: Rel, nodes: list[exp.Expression], replaced: dict[str, Expr]):
    """Join in the value of every scalar subquery in `nodes`; returns the relation and the map from each
    subquery's text to its value column."""
    replaced = dict(replaced)
    for subquery in top_level_subqueries(nodes):
        key = sql_key(subquery)
        if key in replaced:
            continue
        query = _query_of(subquery)
        value = fresh("scalar")
        if not free_tables(query):
            sub = planner.plan(subquery)
            if len(sub.columns) != 1:
                raise planner.query.error(f"A scalar subquery must select one column; this one selects "
                                          f"{len(sub.columns)}", subquery)
            one_row = isinstance(query, exp.Select) and not query.args.get("group") and aggregates_found(query)
            if not one_row:  # SQL fails a scalar subquery of several rows; the run stops before it commits
                sub = sub.expect_rows(max=1, name=f"scalar subquery returns at most one row: {subquery.sql()[:80]}")
            rel = join_rels(rel, Rel(sub.select(col(sub.columns[0]).alias(value))), [],
                            "cross" if one_row else "left")
        else:
            select = _simple(planner, query, "scalar")
            if len(select.expressions) != 1 or not aggregates_found(select):
                raise planner.query.error("A correlated scalar subquery must select one aggregate, e.g. "
                                          "(SELECT max(x) FROM t WHERE t.k = outer.k)", subquery)
            sub, correlations = planner.from_where(select, correlated_ok=True)
            pairs, residual = _split_correlations(planner, correlations, set(source_aliases(select)))
            if residual or not pairs:
                raise planner.query.error("A correlated scalar subquery is supported where it is correlated "
                                          "by equalities (inner.k = outer.k) only", (residual or correlations)[0])
            projection = select.expressions[0]
            projection = projection.this if isinstance(projection, exp.Alias) else projection
            sub = _only_outer_keys(planner, rel, sub, pairs)
            grouped, inner_replaced = planner.aggregate(sub, [inner for _, inner in pairs],
                                                        aggregates_found(projection))
            result = planner.translate(grouped, projection, inner_replaced, "a scalar subquery")
            keys = [fresh("corr") for _ in pairs]
            columns = [inner_replaced[sql_key(inner)].alias(k) for (_, inner), k in zip(pairs, keys)]
            values = grouped.dataset.select(*columns, result.alias(value))
            outer = [planner.translate(rel, o, what="a correlation") for o, _ in pairs]
            rel = join_rels(rel, Rel(values), [(o, col(k)) for o, k in zip(outer, keys)], "left")
            if isinstance(projection, exp.Count):
                rel = rel.with_dataset(rel.dataset.with_columns(col(value).fill_null(0).alias(value)))
        replaced[key] = col(value)
    return rel, replaced

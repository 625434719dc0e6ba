"""A qualified SQL query to a sluice Dataset: SELECT blocks, set operations and CTEs.

A SELECT is planned in the order SQL evaluates it: FROM and its joins (`relations`), WHERE
(plain conditions filter, subquery conditions become joins: `subqueries`), GROUP BY and the
aggregates (one `group_by().agg()`, with any expression over aggregates computed after it),
HAVING, the SELECT list, DISTINCT, ORDER BY and LIMIT. Everything goes through the public
Dataset API, so a SQL query gets the same optimizer, plans and runners as one written in Python.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from ..api.dataset import Dataset
from ..expr.tree import Expr, col, count, lit
from ..io.memory import ArrowSource
from ..plan.logical import Scan
from .expressions import ExpressionTranslator, aggregates_found, sql_key
from .front import Query, normalized
from .relations import Edge, Rel, fresh, join_inner_group, join_rels, table_rel
from .scopes import conjuncts, free_tables, has_subquery, implied_filters, source_aliases
from .subqueries import apply_conditions, with_scalar_subqueries
from .windows import with_windows


class Planner:
    def __init__(self, query: Query, tables: dict[str, Dataset]):
        self.query = query
        self.tables = tables
        self.ctes: dict[str, Dataset] = {}

    # ------------------------------------------------------------ queries

    def plan(self, node: exp.Expression) -> Dataset:
        saved = dict(self.ctes)
        try:
            for cte in (node.args.get("with_").expressions if node.args.get("with_") else []):
                self.ctes[normalized(cte.alias_or_name)] = self.plan(cte.this)
            if isinstance(node, exp.Subquery):
                dataset = self.plan(node.this)
                return self.order_and_limit(dataset, node, dataset.columns)
            if isinstance(node, exp.Select):
                return self.plan_select(node)
            if isinstance(node, (exp.Union, exp.Intersect, exp.Except)):
                return self.plan_set_operation(node)
            raise self.query.error(f"{type(node).__name__} is not supported as a query", node,
                                   "sluice.sql runs SELECT queries (with UNION, INTERSECT, EXCEPT and WITH).")
        finally:
            self.ctes = saved

    def plan_set_operation(self, node) -> Dataset:
        left, right = self.plan(node.this), self.plan(node.expression)
        names = left.columns
        if len(right.columns) != len(names):
            raise self.query.error(f"The two sides of {node.key.upper()} have {len(names)} and {len(right.columns)} "
                                   f"columns", node, "Select the same number of columns on both sides.")
        schema = left.schema
        right = right.select(*[col(r).cast(schema.field(n).type).alias(n) if right.schema.field(r).type != schema.field(
            n).type else col(r).alias(n) for r, n in zip(right.columns, names)])
        distinct = node.args.get("distinct", True) is not False
        if isinstance(node, exp.Union):
            result = left.union(right)
            result = result.distinct() if distinct else result
        else:
            if not distinct:
                raise self.query.error(f"{node.key.upper()} ALL is not supported", node,
                                       f"Use {node.key.upper()} (which drops duplicate rows).")
            result = self.intersect_or_except(left, right, names, isinstance(node, exp.Intersect))
        return self.order_and_limit(result, node, names)

    @staticmethod
    def intersect_or_except(left: Dataset, right: Dataset, names: list[str], intersect: bool) -> Dataset:
        """Rows in both inputs (or in the left one only), nulls equal to nulls as SQL's set operations have it:
        a group-by over both inputs, tagged with their side, where a join would never match a null."""
        side, low, high = fresh("side"), fresh("low"), fresh("high")
        tagged = left.distinct().with_columns(lit(1).alias(side)).union(
            right.distinct().with_columns(lit(2).alias(side)))
        sides = tagged.group_by(*names).agg(col(side).min().alias(low), col(side).max().alias(high))
        kept = (col(low) == 1) & (col(high) == 2) if intersect else col(high) == 1
        return sides.filter(kept).select(*names)

    def order_and_limit(self, dataset: Dataset, node: exp.Expression, names: list[str]) -> Dataset:
        order = node.args.get("order")
        if order is not None:
            keys, descending, nulls_last = [], [], []
            for ordered in order.expressions:
                target = ordered.this
                if isinstance(target, exp.Column) and target.name in names:
                    keys.append(target.name)
                elif isinstance(target, exp.Literal) and not target.is_string and 1 <= int(target.this) <= len(names):
                    keys.append(names[int(target.this) - 1])
                else:
                    raise self.query.error(f"ORDER BY {target.sql()} must name an output column here", target,
                                           f"Use one of {', '.join(names)}.")
                descending.append(bool(ordered.args.get("desc")))
                nulls_last.append(not ordered.args.get("nulls_first"))
            dataset = dataset.sort(keys, descending=descending, nulls_last=nulls_last)
        return self.limit(dataset, node)

    def limit(self, dataset: Dataset, node: exp.Expression) -> Dataset:
        if node.args.get("offset") is not None:
            raise self.query.error("OFFSET is not supported", node.args["offset"], "Use LIMIT alone.")
        limit = node.args.get("limit")
        if limit is None:
            return dataset
        value = limit.expression if limit.expression is not None else limit.this
        if not isinstance(value, exp.Literal) or value.is_string:
            raise self.query.error("LIMIT needs a constant row count", limit)
        return dataset.limit(int(value.this))

    # ------------------------------------------------------------ FROM and WHERE

    def source(self, node: exp.Expression) -> tuple[str, Rel]:
        alias = node.alias_or_name
        column_aliases = [normalized(c.name) for c in node.args["alias"].columns] if isinstance(
            node.args.get("alias"), exp.TableAlias) and node.args["alias"].columns else None
        if isinstance(node, exp.Table):
            name = normalized(node.name)
            dataset = self.ctes.get(name) or self.tables.get(name)
            if dataset is None:
                raise self.query.error(f"Unknown table {node.name!r}", node)
        elif isinstance(node, exp.Subquery):
            dataset = self.plan(node)
        else:
            raise self.query.error(f"{type(node).__name__} in FROM is not supported", node)
        return alias, table_rel(alias, dataset, column_aliases)

    def resolver(self, rel: Rel, what: str = "this query"):
        def resolve(column: exp.Column) -> Expr:
            name = f"{column.table}.{column.name}" if column.table else column.name
            actual = rel.column(name)
            if actual is None and rel.grouped:
                raise self.query.error(f"Column {column.sql()} is neither in GROUP BY nor inside an aggregate, so "
                                       f"it cannot be used in {what}", column,
                                       f"Add it to GROUP BY, or aggregate it, e.g. max({column.sql()}).")
            if actual is None:
                raise self.query.error(f"Column {column.sql()} cannot be used in {what}", column,
                                       "Only the columns of the tables in this SELECT's FROM are in scope here.")
            return col(actual)
        return resolve

    def translate(self, rel: Rel, node: exp.Expression, replaced: dict | None = None,
                  what: str = "this query") -> Expr:
        return ExpressionTranslator(self.query, self.resolver(rel, what), replaced, what)(node)

    def from_where(self, select: exp.Select, correlated_ok: bool = False) -> tuple[Rel, list[exp.Expression]]:
        """FROM, its joins and WHERE. Conditions that refer to an enclosing query's tables are returned, for
        the caller to decorrelate (when `correlated_ok`), not applied."""
        from_ = select.args.get("from_")
        if from_ is None:
            rel = Rel(Dataset(Scan(ArrowSource(pa.table({"__sql_dual": [0]}), "one row"))))
            return apply_conditions(self, rel, conjuncts(select.args.get("where")), set()), []
        joins = select.args.get("joins") or []
        local = set(source_aliases(select))
        where = conjuncts(select.args.get("where"))
        correlated = [c for c in where if free_tables(c) - local]
        if correlated and not correlated_ok:
            outer = sorted(set().union(*(free_tables(c) - local for c in correlated)))
            raise self.query.error(f"This subquery refers to {', '.join(outer)} of an enclosing query, which is "
                                   f"not supported in this place", correlated[0],
                                   "Correlated subqueries are supported in WHERE/HAVING conditions (EXISTS, IN, "
                                   "comparisons) and as scalar values.")
        where = [c for c in where if c not in correlated]
        if all(self.is_inner(j) for j in joins):
            rel = self.join_graph([from_.this] + [j.this for j in joins],
                                  where + [c for j in joins for c in conjuncts(j.args.get("on"))], local)
        else:
            rel = self.join_in_order(from_.this, joins, where, local)
        return rel, correlated

    @staticmethod
    def is_inner(join: exp.Join) -> bool:
        if join.args.get("using"):
            return False
        side, kind = (join.args.get("side") or "").upper(), (join.args.get("kind") or "").upper()
        return not side and kind in ("", "INNER", "CROSS")

    def join_graph(self, sources: list[exp.Expression], conditions: list[exp.Expression], local: set[str]) -> Rel:
        rels = dict(self.source(s) for s in sources)
        edges, pending, later, filtered = [], [], [], set()
        for condition in conditions:
            tables = free_tables(condition) & local
            if has_subquery(condition) and len(tables) == 1 and self.uncorrelated_in(condition):
                # x IN (SELECT ...) on one table: its semi join goes below the joins (TPC-H Q18's 57 orders)
                alias = next(iter(tables))
                rels[alias] = apply_conditions(self, rels[alias], [condition], local)
                filtered.add(alias)
            elif has_subquery(condition):
                later.append(condition)
            elif len(tables) == 1:
                alias = next(iter(tables))
                rels[alias] = rels[alias].filter(self.translate(rels[alias], condition, what="WHERE"))
                filtered.add(alias)
            elif len(tables) == 2 and isinstance(condition, exp.EQ) and \
                    all(len(free_tables(side)) == 1 for side in (condition.this, condition.expression)) and \
                    free_tables(condition.this) != free_tables(condition.expression):
                edges.append(Edge((next(iter(free_tables(condition.this))),
                                   next(iter(free_tables(condition.expression)))),
                                  (condition.this, condition.expression)))
            else:
                pending.append(condition)
                for alias, implied in implied_filters(condition, local).items():
                    rels[alias] = rels[alias].filter(self.translate(rels[alias], implied, what="WHERE"))
                    filtered.add(alias)

        def apply_ready(rel: Rel, joined: set[str]) -> Rel:
            ready = [c for c in pending if free_tables(c) & local <= joined]
            for condition in ready:
                pending.remove(condition)
                rel = rel.filter(self.translate(rel, condition, what="WHERE"))
            return rel

        translate = lambda rel, node: self.translate(rel, node, what="a join condition")  # noqa: E731
        bases = dict(rels)
        rel = join_inner_group(rels, edges, translate, apply_ready, filtered)
        rel.bases = bases
        return apply_conditions(self, rel, later, local)

    def join_in_order(self, first: exp.Expression, joins: list[exp.Join], where: list[exp.Expression],
                      local: set[str]) -> Rel:
        seen, rel = self.source(first)
        seen = {seen}
        for join in joins:
            alias, right = self.source(join.this)
            side = (join.args.get("side") or "").upper()
            if join.args.get("using"):
                raise self.query.error("JOIN ... USING is not supported", join, "Write the condition with ON.")
            if side == "RIGHT":
                raise self.query.error("RIGHT JOIN is not supported", join, "Swap the tables and use LEFT JOIN.")
            if side == "FULL":
                raise self.query.error("FULL JOIN is not supported", join)
            how = "left" if side == "LEFT" else "inner"
            pairs, residual = [], []
            for condition in conjuncts(join.args.get("on")):
                tables = free_tables(condition) & local
                oriented = self.oriented_equality(condition, alias, local)
                if oriented is not None:
                    here, there = oriented
                    pairs.append((self.translate(rel, here), self.translate(right, there)))
                elif tables <= {alias} and not has_subquery(condition):
                    right = right.filter(self.translate(right, condition, what="ON"))
                elif how == "inner":
                    residual.append(condition)
                else:
                    raise self.query.error("This LEFT JOIN condition is not supported", condition,
                                           "A LEFT JOIN's ON may hold equalities between the two sides and "
                                           "conditions on the joined table alone.")
            rel = join_rels(rel, right, pairs, how if pairs else ("cross" if how == "inner" else "left"))
            seen.add(alias)
            for condition in residual:
                rel = rel.filter(self.translate(rel, condition, what="ON"))
        plain = [c for c in where if not has_subquery(c)]
        for condition in plain:
            rel = rel.filter(self.translate(rel, condition, what="WHERE"))
        return apply_conditions(self, rel, [c for c in where if has_subquery(c)], local)

    @staticmethod
    def uncorrelated_in(condition: exp.Expression) -> bool:
        inner = condition.this if isinstance(condition, exp.Not) else condition
        query = inner.args.get("query") if isinstance(inner, exp.In) else None
        return query is not None and not free_tables(query) and not has_subquery(inner.this)

    @staticmethod
    def oriented_equality(condition: exp.Expression, alias: str, local: set[str]):
        """(earlier tables' side, `alias`'s side) of an equality between `alias` and the tables before it."""
        if not isinstance(condition, exp.EQ) or has_subquery(condition):
            return None
        left, right = free_tables(condition.this) & local, free_tables(condition.expression) & local
        if left == {alias} and right and alias not in right:
            return condition.expression, condition.this
        if right == {alias} and left and alias not in left:
            return condition.this, condition.expression
        return None

    # ------------------------------------------------------------ SELECT

    SELECT_PARTS = {"with_", "expressions", "distinct", "from_", "joins", "where", "group", "having", "order", "limit",
                    "offset"}

    def check_supported(self, select: exp.Select) -> None:
        """Refuse the clauses the planner does not handle, rather than ignore them."""
        for part, value in select.args.items():
            if part not in self.SELECT_PARTS and value not in (None, [], False):
                shown = value[0] if isinstance(value, list) else value
                raise self.query.error(f"{part.rstrip('_').upper()} in a SELECT is not supported", shown
                                       if isinstance(shown, exp.Expression) else select)
        group = select.args.get("group")
        for part in ("rollup", "cube", "grouping_sets", "totals"):
            if group is not None and group.args.get(part):
                raise self.query.error(f"GROUP BY {part.upper().replace('_', ' ')} is not supported", group,
                                       "Group by plain columns or expressions, and UNION ALL the levels you need.")

    def plan_select(self, select: exp.Select) -> Dataset:
        self.check_supported(select)
        rel, _ = self.from_where(select)
        projections = select.expressions
        having = select.args.get("having")
        order = select.args.get("order")
        group = select.args.get("group")
        ordered = order.expressions if order is not None else []
        found = [a for node in projections + ([having] if having else []) + ordered for a in aggregates_found(node)]
        replaced: dict[str, Expr] = {}
        if found or group is not None:
            rel, replaced = self.aggregate(rel, group.expressions if group is not None else [], found)
            if having is not None:
                rel = apply_conditions(self, rel, conjuncts(having.this), set(), replaced)
        elif having is not None:
            raise self.query.error("HAVING needs GROUP BY or an aggregate", having)
        rel, replaced = with_scalar_subqueries(self, rel, projections + ordered, replaced)
        rel, replaced = with_windows(self, rel, projections + ordered, replaced)
        names, exprs = [], []
        for projection in projections:
            name = projection.alias_or_name
            if name in names:
                raise self.query.error(f"Two output columns are named {name!r}", projection,
                                       "Give one of them another name with AS.")
            node = projection.this if isinstance(projection, exp.Alias) else projection
            names.append(name)
            exprs.append(self.translate(rel, node, replaced, "SELECT").alias(name))
        hidden, keys, descending, nulls_last = [], [], [], []
        for item in ordered:
            target = item.this
            by_text = {sql_key(p.this if isinstance(p, exp.Alias) else p): p.alias_or_name for p in projections}
            if isinstance(target, exp.Column) and not target.table and target.name in names:
                keys.append(target.name)
            elif isinstance(target, exp.Literal) and not target.is_string:
                keys.append(names[int(target.this) - 1])
            elif sql_key(target) in by_text:
                keys.append(by_text[sql_key(target)])
            else:
                if select.args.get("distinct"):
                    raise self.query.error("With SELECT DISTINCT, ORDER BY must use output columns", target)
                name = fresh("order")
                hidden.append(name)
                exprs.append(self.translate(rel, target, replaced, "ORDER BY").alias(name))
                keys.append(name)
            descending.append(bool(item.args.get("desc")))
            nulls_last.append(not item.args.get("nulls_first"))
        dataset = rel.dataset.select(*exprs)
        if select.args.get("distinct"):
            if select.args["distinct"].args.get("on"):
                raise self.query.error("DISTINCT ON is not supported", select.args["distinct"])
            dataset = dataset.distinct()
        if keys:
            dataset = dataset.sort(keys, descending=descending, nulls_last=nulls_last)
        dataset = self.limit(dataset, select)
        return dataset.drop(*hidden) if hidden else dataset

    def aggregate(self, rel: Rel, group_by: list[exp.Expression], found: list[exp.Expression]):
        """GROUP BY and the aggregates: returns the grouped relation and what each aggregate or key became."""
        keys, replaced = [], {}
        for node in group_by:
            expr = self.translate(rel, node, what="GROUP BY")
            rel, name = rel.key_column(expr)
            keys.append(name)
            replaced[sql_key(node)] = col(name)
        aggs, by_text = [], {}
        for node in found:
            text = sql_key(node)
            if text in by_text:
                continue
            name = fresh("agg")
            by_text[text] = name
            aggs.append(self.aggregation(rel, node).alias(name))
            replaced[text] = col(name)
        if aggs:
            dataset = rel.dataset.group_by(*keys).agg(*aggs) if keys else rel.dataset.agg(*aggs)
        else:
            dataset = rel.dataset.select(*keys).distinct()
        kept = set(keys)
        aliases = {n: t for n, t in rel.aliases.items() if t in kept}
        return Rel(dataset, aliases, grouped=True), replaced

    def aggregation(self, rel: Rel, node: exp.Expression) -> Expr:
        argument = node.this
        if isinstance(node, exp.Count):
            if isinstance(argument, exp.Star) or argument is None:
                return count()
            if isinstance(argument, exp.Distinct):
                if len(argument.expressions) != 1:
                    raise self.query.error("COUNT(DISTINCT ...) takes one expression here", node)
                return self.translate(rel, argument.expressions[0], what="an aggregate").count_distinct()
            return self.translate(rel, argument, what="an aggregate").count()
        if isinstance(argument, exp.Distinct):
            raise self.query.error(f"{node.sql_name()}(DISTINCT ...) is not supported", node,
                                   "Only COUNT(DISTINCT x) is; for others aggregate a DISTINCT subquery.")
        inner = self.translate(rel, argument, what="an aggregate")
        method = {exp.Sum: "sum", exp.Avg: "mean", exp.Min: "min", exp.Max: "max", exp.Stddev: "std",
                  exp.StddevSamp: "std", exp.Variance: "var", exp.Median: "median"}.get(type(node))
        if method is None:
            raise self.query.error(f"Aggregate {node.sql_name()} is not supported", node)
        return getattr(inner, method)()


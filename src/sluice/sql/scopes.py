"""Questions about a qualified sqlglot tree that every part of the planner asks: the conjuncts of a
condition, the tables a SELECT defines, and the tables a node refers to from outside (its correlation).
"""

from __future__ import annotations

from sqlglot import exp

from .expressions import sql_key


def conjuncts(node: exp.Expression | None) -> list[exp.Expression]:
    if node is None:
        return []
    if isinstance(node, (exp.Where, exp.Having)):
        node = node.this
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return conjuncts(node.this) + conjuncts(node.expression)
    factored = factor_or(node)
    return [factored] if factored is node else conjuncts(factored)


def factor_or(node: exp.Expression) -> exp.Expression:
    """(A AND B) OR (A AND C) as A AND (B OR C): a join condition repeated in every branch of an OR (TPC-H
    Q19) becomes a join key instead of a filter over a cross product."""
    if not isinstance(node, exp.Or):
        return node
    branches = disjuncts(node)
    parts = [conjuncts(b) for b in branches]
    common_keys = set.intersection(*({sql_key(p) for p in part} for part in parts))
    if not common_keys:
        return node
    common = [p for p in parts[0] if sql_key(p) in common_keys]
    rests = []
    for part in parts:
        rest = [p for p in part if sql_key(p) not in common_keys]
        if not rest:
            return exp.and_(*common)  # one branch is just the common part: the OR adds nothing
        rests.append(exp.and_(*rest) if len(rest) > 1 else rest[0])
    return exp.and_(*common, exp.or_(*[exp.Paren(this=r) for r in rests]))


def disjuncts(node: exp.Expression) -> list[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Or):
        return disjuncts(node.this) + disjuncts(node.expression)
    return [node]


def source_aliases(select: exp.Select) -> list[str]:
    sources = []
    from_ = select.args.get("from_")
    if from_ is not None:
        sources.append(from_.this)
    sources += [j.this for j in select.args.get("joins") or []]
    return [s.alias_or_name for s in sources]


def free_tables(node: exp.Expression) -> set[str]:
    """Table aliases a node's columns refer to that no SELECT inside the node defines (its correlation)."""
    if isinstance(node, exp.Column):
        return {node.table} if node.table else set()
    found: set[str] = set()
    for child in node.iter_expressions():
        found |= free_tables(child)
    if isinstance(node, exp.Select):
        found -= set(source_aliases(node))
    return found


def has_subquery(node: exp.Expression) -> bool:
    return any(isinstance(n, (exp.Subquery, exp.Exists)) or (isinstance(n, exp.In) and n.args.get("query"))
               for n in node.walk())


def implied_filters(condition: exp.Expression, local: set[str]) -> dict[str, exp.Expression]:
    """Per table, a condition an OR over several tables implies for that table alone: from (n1.a = 'X' AND
    n2.a = 'Y') OR (n1.a = 'Y' AND n2.a = 'X'), n1.a = 'X' OR n1.a = 'Y'. Filtering each table by it before
    the join is sound (the OR itself is still applied after the join) and keeps the join small."""
    if not isinstance(condition, exp.Or):
        return {}
    branches = [conjuncts(b) for b in disjuncts(condition)]
    implied = {}
    for table in sorted(free_tables(condition) & local):
        per_branch = []
        for parts in branches:
            own = [p for p in parts if free_tables(p) & local == {table} and not has_subquery(p)]
            if not own:
                break
            per_branch.append(exp.and_(*own) if len(own) > 1 else own[0])
        else:
            implied[table] = exp.or_(*[exp.Paren(this=b) for b in per_branch])
    return implied

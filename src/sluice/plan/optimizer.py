"""The optimizer: an ordered tuple of pure rules, applied until the plan stops changing.

Add a rule by writing `plan/rules/<name>.py` with one function `LogicalNode -> LogicalNode`
that returns new nodes (never mutates), adding it to `RULES` in the right place, and adding
golden tests (input plan, expected plan) under tests/unit/rules/.
"""

from __future__ import annotations

from .logical import LogicalNode
from .rules.constant_folding import fold_constants
from .rules.fuse_top_k import fuse_top_k
from .rules.merge_filters import merge_filters
from .rules.merge_projections import merge_projections
from .rules.prune_columns import prune_columns
from .rules.pushdown_limit import push_limits_down
from .rules.pushdown_predicates import push_predicates_down

RULES = (
    fold_constants,
    merge_filters,
    push_predicates_down,
    merge_projections,
    push_limits_down,
    fuse_top_k,
    prune_columns,
)

MAX_PASSES = 16


def optimize(plan: LogicalNode, rules=RULES) -> LogicalNode:
    for _ in range(MAX_PASSES):
        before = plan
        for rule in rules:
            plan = rule(plan)
        if plan == before:
            return plan
    return plan

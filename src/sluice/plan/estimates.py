"""Plan-time size estimates, for choosing join strategies and partition counts.

Estimates come from source metadata (Parquet footers' sizes, file sizes, in-memory tables)
and simple rules for each operator. They only steer plan-time choices; the runner measures
real sizes once an exchange's map side is done, and adapts (see the local runner's shuffle).
"""

from __future__ import annotations

from .checks import Expect
from .logical import (
    Aggregate, Distinct, Filter, Join, Limit, LogicalNode, MapBatches, Project, Repartition, Scan, Sort, TopK, Union,
    Window, Write,
)
from .reshape import RESHAPE_NODES

ROW_WIDTH_GUESS = 64


def estimated_bytes(node: LogicalNode) -> int | None:
    if isinstance(node, Scan):
        estimate = node.source.estimated_bytes(node.columns, node.predicates)
        if estimate is not None and node.limit is not None:
            return min(estimate, node.limit * ROW_WIDTH_GUESS)
        return estimate
    if isinstance(node, (Filter, MapBatches, Distinct, Sort, Repartition, Write, Expect, *RESHAPE_NODES)):
        return estimated_bytes(node.input)
    if isinstance(node, (Project, Window)):
        inner = estimated_bytes(node.input)
        before, after = node.input.schema, node.schema
        if inner is None or before is None or after is None or not len(before):
            return inner
        return int(inner * len(after) / len(before))
    if isinstance(node, (Limit, TopK)):
        inner = estimated_bytes(node.input)
        return node.n * ROW_WIDTH_GUESS if inner is None else min(inner, node.n * ROW_WIDTH_GUESS)
    if isinstance(node, Aggregate):
        inner = estimated_bytes(node.input)
        return None if inner is None else (inner // 2 if node.keys else ROW_WIDTH_GUESS)
    if isinstance(node, (Join, Union)):
        parts = [estimated_bytes(c) for c in node.children]
        return None if any(p is None for p in parts) else sum(parts)  # type: ignore[arg-type]
    return None

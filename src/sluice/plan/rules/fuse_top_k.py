"""Sort followed by limit becomes a top-k: each block keeps its best n rows, so no full sort
and no range exchange is needed, only one small final task."""

from __future__ import annotations

from ..logical import Limit, LogicalNode, Sort, TopK, transform_up


def _fuse(node: LogicalNode) -> LogicalNode:
    if isinstance(node, Limit) and isinstance(node.input, Sort):
        return TopK(node.input.input, node.input.spec, node.n)
    if isinstance(node, Limit) and isinstance(node.input, TopK):
        return TopK(node.input.input, node.input.spec, min(node.n, node.input.n))
    return node


def fuse_top_k(plan: LogicalNode) -> LogicalNode:
    return transform_up(plan, _fuse)

"""Limit pushdown: stop reading once enough rows are produced.

A limit moves below projections and row indexes (they keep row counts and order), into each input of a union (each
needs at most n rows), merges with another limit, and reaches the scan, whose tasks then stop
after n rows. The original limit stays on top, since each scan task may yield n rows.
"""

from __future__ import annotations

import dataclasses

from ..logical import Limit, LogicalNode, Project, Scan, Union, transform_down
from ..reshape import RowIndex


def _push(node: LogicalNode) -> LogicalNode:
    if not isinstance(node, Limit):
        return node
    child = node.input
    if isinstance(child, Limit):
        return Limit(child.input, min(node.n, child.n))
    if isinstance(child, Project):
        return Project(Limit(child.input, node.n), child.exprs)
    if isinstance(child, RowIndex):  # the first n rows keep their numbers
        return dataclasses.replace(child, input=Limit(child.input, node.n))
    if isinstance(child, Union):
        branches = tuple(b if isinstance(b, Limit) and b.n <= node.n else Limit(b, node.n) for b in child.inputs)
        if any(a is not b for a, b in zip(branches, child.inputs)):
            return Limit(Union(branches), node.n)
    if isinstance(child, Scan) and (child.limit is None or child.limit > node.n):
        return Limit(dataclasses.replace(child, limit=node.n), node.n)
    return node


def push_limits_down(plan: LogicalNode) -> LogicalNode:
    return transform_down(plan, _push)

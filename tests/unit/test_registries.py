"""Every plan node has a planner and a lowering (or a stated reason for none); every stage kind and
stream operator has the engine code that runs it. A new node or stage without them fails here."""

import inspect

from sluice.engine.stage_run import STAGE_RUNNERS, STREAM_PLANS
from sluice.physical import operators, stages
from sluice.physical.fusion import LOWERINGS, NOT_LOWERED
from sluice.physical.planner import PLANNERS
from sluice.plan import checks, logical, reshape


def _subclasses(module, base) -> set[type]:
    return {obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, base) and obj is not base and obj.__module__ == module.__name__
            and not inspect.isabstract(obj) and not obj.__name__.endswith("Node")}


def _nodes() -> set[type]:
    return (_subclasses(logical, logical.LogicalNode) | _subclasses(checks, logical.LogicalNode)
            | _subclasses(reshape, logical.LogicalNode))


def test_every_logical_node_has_a_planner():
    nodes = _nodes()
    assert nodes, "no plan nodes found"
    assert nodes - set(PLANNERS) == set()


def test_every_logical_node_has_a_lowering_or_a_reason_for_none():
    nodes = _nodes()
    assert nodes - set(LOWERINGS) - set(NOT_LOWERED) == set()
    assert set(LOWERINGS) & set(NOT_LOWERED) == set()
    assert all(reason.strip() for reason in NOT_LOWERED.values())


def test_every_stage_kind_has_the_engine_code_that_runs_it():
    kinds = _subclasses(stages, stages.Stage)
    assert {stages.ScanStage, stages.JoinStage, stages.SortStage} <= kinds
    assert kinds - set(STAGE_RUNNERS) == set()


def test_every_stream_operator_is_planned_from_row_counts():
    assert _subclasses(operators, operators.StreamOp) - set(STREAM_PLANS) == set()

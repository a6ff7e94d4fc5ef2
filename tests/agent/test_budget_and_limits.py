"""Unit tests of the tree's money and iteration limits, the meter seam and stuck detection."""

from __future__ import annotations

from decimal import Decimal

import pytest

from keen.agent.budget import Budget, BudgetExhausted, BudgetMeter, IterationPool
from keen.agent.stuck import StuckDetector
from keen.events.types import SessionRef

REF = SessionRef("s", "s")


def test_a_child_budget_is_capped_by_what_its_parent_has_left() -> None:
    root = Budget(limit=Decimal("1"))
    root.hold(Decimal("0.4"))
    child = root.child(Decimal("5"))
    assert child.limit == Decimal("0.6")
    assert root.child(Decimal("0.1")).limit == Decimal("0.1")


def test_holds_count_up_the_tree_and_settle_at_the_actual_cost() -> None:
    root = Budget(limit=Decimal("1"))
    child = root.child()
    child.hold(Decimal("0.5"))
    assert root.available() == Decimal("0.5")
    child.settle(Decimal("0.5"), Decimal("0.2"))
    assert root.spent == Decimal("0.2") and child.spent == Decimal("0.2") and root.held == 0
    child.hold(Decimal("0.3"))
    child.release(Decimal("0.3"))
    assert root.available() == Decimal("0.8")


def test_a_hold_past_what_is_left_is_refused_before_anything_is_held() -> None:
    root = Budget(limit=Decimal("1"))
    sibling = root.child()
    sibling.hold(Decimal("0.9"))
    other = root.child()
    with pytest.raises(BudgetExhausted):
        other.hold(Decimal("0.2"))
    assert root.held == Decimal("0.9") and other.held == 0


def test_the_warning_fires_once_at_80_percent_of_the_root_budget() -> None:
    root = Budget(limit=Decimal("1"))
    child = root.child()
    child.hold(Decimal("0.7"))
    child.settle(Decimal("0.7"), Decimal("0.7"))
    assert not child.crossed_warning()
    child.hold(Decimal("0.1"))
    child.settle(Decimal("0.1"), Decimal("0.1"))
    assert child.crossed_warning() and not root.crossed_warning()


async def test_a_child_meter_comes_from_its_parent_and_charges_the_whole_tree() -> None:
    root = BudgetMeter(Budget(limit=Decimal("1")))
    child = root.child(Decimal("0.5"))
    grandchild = child.child()
    hold = await grandchild.reserve(Decimal("0.3"), ref=REF, call_id="s:1")
    assert hold.call_id == "s:1" and root.budget.available() == Decimal("0.7")
    assert await grandchild.charge(hold, Decimal("0.1")) == ()
    await grandchild.charge(hold, Decimal("0.1"))  # charging twice changes nothing
    assert root.budget.spent == Decimal("0.1") and child.budget.spent == Decimal("0.1")
    await grandchild.release(hold)
    assert root.budget.held == 0


def test_the_iteration_pool_is_shared_down_the_tree() -> None:
    root = IterationPool(limit=10)
    child = root.child(4)
    for _ in range(3):
        child.use()
    assert root.remaining() == 7 and child.remaining() == 1
    assert root.child(50).limit == 7
    grandchild = child.child(10)
    assert grandchild.limit == 1
    grandchild.use()
    assert child.remaining() == 0 and root.used == 4


def test_stuck_detection_nudges_then_ends_on_the_same_failing_call() -> None:
    stuck = StuckDetector()
    verdicts = [stuck.observe("run_command", {"command": "make"}, False, "error") for _ in range(4)]
    assert [bool(v.nudge) for v in verdicts] == [False, False, True, False]
    assert verdicts[3].stuck and "failed" in verdicts[3].stuck


def test_stuck_detection_counts_the_same_result_and_resets_on_another_call() -> None:
    stuck = StuckDetector()
    for _ in range(3):
        assert not stuck.observe("read_files", {"paths": ["a"]}, True, "same").nudge
    assert stuck.observe("read_files", {"paths": ["a"]}, True, "same").nudge
    assert not stuck.observe("read_files", {"paths": ["b"]}, True, "same").nudge
    assert not stuck.observe("read_files", {"paths": ["a"]}, True, "same").stuck

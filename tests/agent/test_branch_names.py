"""Branch naming of the agent tree lives in one function; these pin it to the spec."""

import pytest

from keen.agent.tree import MAX_CHILDREN, child_branch_name, git_branch_name


def test_children_of_the_root_are_summon_letters() -> None:
    assert [child_branch_name("main", i) for i in range(3)] == ["summon-A", "summon-B", "summon-C"]
    assert child_branch_name("main", 25) == "summon-Z"


def test_each_level_adds_one_letter_segment() -> None:
    assert child_branch_name("summon-A", 0) == "summon-A-A"
    assert child_branch_name("summon-A", 1) == "summon-A-B"
    assert child_branch_name("summon-B-C", 3) == "summon-B-C-D"


def test_at_most_26_children() -> None:
    with pytest.raises(ValueError, match="at most 26"):
        child_branch_name("main", MAX_CHILDREN)
    with pytest.raises(ValueError):
        child_branch_name("main", -1)


def test_git_branch_is_namespaced_by_session() -> None:
    assert git_branch_name("1a2b3c4d", "summon-A-B") == "keen/1a2b3c4d/summon-A-B"

"""Context condensing keeps a long session going; every prompt template renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import call, complete, run_session, turn, write_script
from keen.agent import context
from keen.agent.history import History
from keen.agent.prompts.render import render, template_names
from keen.llm.base import Message, TextPart, ToolResultPart, ToolUsePart
from prompt_contexts import CONTEXTS


async def test_long_session_condenses_instead_of_failing(repo: Path, tmp_path: Path) -> None:
    big = "x" * 6_000
    (repo / "big.txt").write_text(big)
    reads = [turn(call("read_files", paths=["big.txt"], max_bytes=10_000 + i)) for i in range(16)]
    script = write_script(tmp_path / "s.json", [*reads, complete("read it all")], context_window=24_000)
    run = await run_session(repo, script, allow_dirty=True)
    assert run.result.status == "completed", run.result.summary
    condensed = run.of_type("context.condensed")
    methods = [e.data["method"] for e in condensed]
    assert "shorten" in methods and "summary" in methods
    assert all(e.data["tokens_after"] < e.data["tokens_before"] for e in condensed), [
        (e.data["method"], e.data["tokens_before"], e.data["tokens_after"]) for e in condensed
    ]
    # The rebuilt conversation is the condensed one: the summary leads, the newest results stay whole.
    history = History()
    for event in run.events:
        history.apply(event)
    first = history.messages[0]
    assert any(isinstance(p, TextPart) and "condensed" in p.text for p in first.parts)
    assert history.chars == sum(m.chars() for m in history.messages)  # the running size stays exact
    newest = [p for m in history.messages for p in m.parts if isinstance(p, ToolResultPart)][-1]
    assert big in newest.content  # the newest result is whole


def test_shortening_keeps_the_newest_messages_whole() -> None:
    long = "a" * 5000
    messages = [
        Message(role="user", parts=[TextPart(text="vision")]),
        Message(role="assistant", parts=[ToolUsePart(id="1", name="read_files", input={})]),
        Message(role="user", parts=[ToolResultPart(tool_use_id="1", content=long)]),
        Message(role="assistant", parts=[ToolUsePart(id="2", name="read_files", input={})]),
        Message(role="user", parts=[ToolResultPart(tool_use_id="2", content=long)]),
    ]
    out = context.shorten_tool_results(messages, keep_last=1, max_chars=100)
    assert len(out[2].parts[0].content) < 200 and "characters cut" in out[2].parts[0].content
    assert out[4].parts[0].content == long


def test_summary_split_starts_the_tail_at_an_assistant_turn() -> None:
    messages = [
        Message(role="user" if i % 2 == 0 else "assistant", parts=[TextPart(text=str(i))]) for i in range(9)
    ]
    start = context.summary_split(messages, keep_last=4)
    assert messages[start].role == "assistant" and start >= 5


@pytest.mark.parametrize("name", template_names())
def test_every_prompt_template_renders(name: str) -> None:
    assert name in CONTEXTS, f"{name} has no sample data in tests/prompt_contexts.py"
    text = render(name, **CONTEXTS[name])
    assert text.strip()
    assert "{{" not in text and "{%" not in text


def test_system_prompt_of_a_child_names_its_specialization_and_parent() -> None:
    from keen.agent.phases import Phase
    from keen.agent.prompts.builders import system_prompt
    from keen.agent.spec import AgentSpec

    spec = AgentSpec(
        session_id="c",
        short_id="c",
        root_session_id="r",
        parent_session_id="r",
        vision="write tests",
        workspace=Path("/w"),
        branch_name="summon-A",
        git_branch="keen/r/summon-A",
        specialization="testing",
        depth=1,
        parent_branch="main",
        parent_expectation="the test files you added",
        phase=Phase.EXPLORE,
    )
    from decimal import Decimal

    text = system_prompt(
        spec, tool_names=["summon_agent"], budget=Decimal(2), max_iterations=20, focus="test design"
    )
    assert "testing specialist" in text and "summoned by main" in text
    assert "test design" in text and "the test files you added" in text
    assert "Work is not complete until it validates" in text

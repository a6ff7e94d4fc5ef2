"""The conversation agent: real turns, read-only tools, costs, `clear`, vision synthesis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from helpers import call, turn, write_script
from keen.agent.budget import Budget, BudgetMeter
from keen.agent.conversation import ConversationAgent
from keen.agent.history import History
from keen.config import get_settings
from keen.events import types as ev
from keen.llm.base import TextPart, ToolResultPart, ToolUsePart
from keen.llm.scripted import ScriptedModel
from keen.runner.sessions import SessionService, conversation_created, new_session_id


@dataclass
class Chat:
    agent: ConversationAgent
    runner: SessionService

    async def events(self) -> list[Any]:
        return await self.runner.events(self.agent.session_id)

    async def types(self) -> list[str]:
        return [e.type for e in await self.events()]


@pytest.fixture
async def chat_factory(project: Path, tmp_path: Path) -> AsyncIterator[Any]:
    runners: list[SessionService] = []

    async def make(converse: list[dict[str, Any]], **options: Any) -> Chat:
        script = write_script(tmp_path / f"script-{len(runners)}.json", {"converse": converse})
        runner = await SessionService(get_settings()).open()
        runners.append(runner)
        budget = options.pop("budget", Budget(limit=Decimal("5")))
        agent = ConversationAgent(
            workspace=project,
            model=ScriptedModel(script),
            sink=runner.sink,
            meter=BudgetMeter(budget),
            retry_base_delay=0.0,
            session_id=new_session_id(),
            **options,
        )
        await agent.start(
            conversation_created(
                session_id=agent.session_id,
                workspace=project,
                model=agent.model_name,
                budget=budget.limit,
                max_tool_rounds=agent.max_tool_rounds,
                user_id="local",
            )
        )
        return Chat(agent, runner)

    yield make
    for runner in runners:
        await runner.close()


async def test_history_is_kept_as_real_user_and_assistant_turns(chat_factory: Any) -> None:
    chat = await chat_factory(
        [
            turn(call("read_files", paths=["notes.txt"]), text="Reading."),
            turn(text="It says marmalade."),
            turn(text="You asked about notes.txt."),
        ]
    )
    first = await chat.agent.send("What does notes.txt say?")
    assert first.text == "Reading.\n\nIt says marmalade." and first.model_calls == 2
    await chat.agent.send("What did I ask?")

    messages = chat.agent.history.messages
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert messages[0].text() == "What does notes.txt say?"
    assert isinstance(messages[1].parts[-1], ToolUsePart)
    result = messages[2].parts[0]
    assert isinstance(result, ToolResultPart) and "The secret word is marmalade." in result.content
    assert messages[4].parts == [TextPart(text="What did I ask?")]

    # The conversation is a projection of the stored events: rebuilt, it is the same.
    rebuilt = History()
    for event in await chat.events():
        rebuilt.apply(event)
    assert [m.model_dump() for m in rebuilt.messages] == [m.model_dump() for m in messages]


async def test_a_write_tool_is_refused_and_nothing_is_written(chat_factory: Any, project: Path) -> None:
    chat = await chat_factory(
        [
            turn(
                call("write_files", files=[{"path": "hacked.txt", "content": "x"}]),
                call("run_command", command="touch ran.txt"),
                text="I will write it.",
            ),
            turn(text="I cannot change files."),
        ]
    )
    reply = await chat.agent.send("write hacked.txt")
    assert reply.text.endswith("I cannot change files.")
    assert not (project / "hacked.txt").exists() and not (project / "ran.txt").exists()
    finished = [e.data for e in await chat.events() if e.type == ev.TOOL_FINISHED]
    assert [(d["name"], d["ok"]) for d in finished] == [("write_files", False), ("run_command", False)]
    assert "write_files is refused" in finished[0]["error"] and "read-only" in finished[0]["error"]
    # The model was told: the error results went back with the next call.
    results = [p for p in chat.agent.history.messages[2].parts if isinstance(p, ToolResultPart)]
    assert [r.is_error for r in results] == [True, True]
    assert chat.agent.tools.names == ["get_project_tree", "read_files", "search_files"]


async def test_tool_rounds_per_message_are_capped_and_the_history_stays_paired(chat_factory: Any) -> None:
    reading = turn(call("get_project_tree"))
    chat = await chat_factory([reading, reading, reading, turn(text="fine")], max_tool_rounds=2)
    reply = await chat.agent.send("look around forever")
    assert reply.stopped and reply.model_calls == 2
    finished = [e.data for e in await chat.events() if e.type == ev.TOOL_FINISHED]
    assert [d["ok"] for d in finished] == [True, False]
    assert "limit of 2 tool rounds" in finished[1]["error"]
    # Every tool call has its result, so the next message is a valid request.
    await chat.agent.send("ok, stop")
    request = chat.agent._request()
    uses = {p.id for m in request.messages for p in m.parts if isinstance(p, ToolUsePart)}
    results = {p.tool_use_id for m in request.messages for p in m.parts if isinstance(p, ToolResultPart)}
    assert uses == results


async def test_costs_are_summed_and_the_budget_is_checked_before_each_call(chat_factory: Any) -> None:
    chat = await chat_factory([turn(text="one"), turn(text="two")], budget=Budget(limit=Decimal("0.005")))
    await chat.agent.send("first")
    assert chat.agent.spent == Decimal("0.004")  # 1000 in + 200 out at the default model's price
    from keen.agent.budget import BudgetExhausted

    with pytest.raises(BudgetExhausted):
        await chat.agent.send("second")  # its worst case no longer fits: refused before the call
    responded = [e for e in await chat.events() if e.type == ev.MODEL_RESPONDED]
    assert len(responded) == 1


async def test_clear_forgets_the_history_and_is_recorded(chat_factory: Any) -> None:
    chat = await chat_factory([turn(text="noted"), turn(text="fresh start")])
    await chat.agent.send("remember the word marmalade")
    await chat.agent.clear()
    assert chat.agent.history.messages == [] and chat.agent.exchanges == []
    await chat.agent.send("what word?")
    assert [m.text() for m in chat.agent.history.messages] == ["what word?", "fresh start"]
    assert ev.CONVERSATION_CLEARED in await chat.types()


async def test_vision_synthesis_uses_its_own_prompt_and_is_not_a_turn(chat_factory: Any) -> None:
    chat = await chat_factory([turn(text="Sounds good."), turn(text="Build a greeter CLI with tests.")])
    await chat.agent.send("I want a CLI that greets people")
    vision = await chat.agent.synthesize_vision()
    assert not vision.fallback and vision.text == "Build a greeter CLI with tests."
    assert await chat.agent.synthesize_vision() is vision  # nothing new said: no second call
    assert len(chat.agent.history.messages) == 2  # the synthesis did not enter the conversation
    responded = [e.data for e in await chat.events() if e.type == ev.MODEL_RESPONDED]
    assert [d.get("side_call") for d in responded] == [None, "synthesize_vision"]
    assert chat.agent.spent == Decimal("0.008")  # but it is costed
    await chat.agent.finish()
    row = await chat.runner.get(chat.agent.session_id)
    assert (row.kind, row.status, row.cost_usd) == ("conversation", "completed", Decimal("0.008"))


@pytest.mark.parametrize(
    ("synthesis_turns", "reason"),
    [([], "script exhausted"), ([turn(text="")], "no text"), ([{"error": "context_length"}], "too long")],
)
async def test_vision_falls_back_to_the_users_messages_when_the_model_fails(
    chat_factory: Any, synthesis_turns: list[dict[str, Any]], reason: str
) -> None:
    chat = await chat_factory([turn(text="ok"), turn(text="ok"), *synthesis_turns])
    await chat.agent.send("Build a greeter CLI")
    await chat.agent.send("It must greet in French too")
    vision = await chat.agent.synthesize_vision()
    assert vision.fallback and reason in (vision.reason or "")
    assert "(fallback: the model could not synthesize a vision" in vision.text
    assert "built from your messages)" in vision.text
    assert "Build a greeter CLI" in vision.text and "It must greet in French too" in vision.text
    from keen.agent.vision import check_vision

    assert check_vision(vision.text) == vision.text  # usable as a vision as it is
    recorded = [e.data for e in await chat.events() if e.type == ev.CONVERSATION_VISION]
    assert recorded[-1]["fallback"] is True


async def test_nothing_said_means_nothing_to_synthesize(chat_factory: Any) -> None:
    chat = await chat_factory([])
    from keen.errors import InputError

    with pytest.raises(InputError, match="say what you want"):
        await chat.agent.synthesize_vision()

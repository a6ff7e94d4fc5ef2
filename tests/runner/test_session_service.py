"""The session service: the root's meter meters every child, the conversation rebuilt from the
log is what the model was sent, and cancel and liveness go through the store."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from helpers import call, complete, summon, turn, write_script
from keen.agent.budget import Budget, BudgetMeter, Hold
from keen.agent.history import History
from keen.config import get_settings, reset_settings_cache
from keen.errors import ConfigError, InputError
from keen.events import types as ev
from keen.events.types import SessionRef
from keen.llm.base import Request
from keen.llm.scripted import ScriptedModel
from keen.runner.options import RunOptions, make_options
from keen.runner.sessions import SessionService


def _options(repo: Path, script: Path, **extra: Any) -> RunOptions:
    values: dict[str, Any] = {
        "vision": "build the thing described in the script",
        "directory": repo,
        "model": f"scripted:{script}",
        "max_iterations": 50,
        "budget": "10",
        "phase": "EXPLORE",
        "max_depth": 3,
        "gates": "off",
        "web_search": False,
        "allow_dirty": False,
        **extra,
    }
    return make_options(get_settings(), **values)


class RecordingMeter(BudgetMeter):
    """A root meter that sees every reservation of its tree (as a credit meter would)."""

    def __init__(self, budget: Budget, seen: list[str]) -> None:
        super().__init__(budget)
        self.seen = seen

    def child(self, cap: Decimal | None = None) -> RecordingMeter:
        return RecordingMeter(self.budget.child(cap), self.seen)

    async def reserve(self, amount: Decimal, *, ref: SessionRef, call_id: str) -> Hold:
        self.seen.append(call_id)
        return await super().reserve(amount, ref=ref, call_id=call_id)


async def test_a_childs_model_calls_go_through_the_roots_meter(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(summon("write child.txt with a greeting", "general")), complete("merged")],
            "summon-A": [turn(call("write_files", path="child.txt", content="hi\n")), complete("written")],
        },
    )
    seen: list[str] = []
    settings = get_settings()
    service = SessionService(settings, meter_for=lambda budget: RecordingMeter(Budget(limit=budget), seen))
    async with service:
        spec = await service.create(_options(repo, script))
        result = await service.run(spec.session_id)
        events = await service.events(spec.session_id)
    assert result.status == "completed", result.summary
    child_id = next(e.data["child_session_id"] for e in events if e.type == ev.CHILD_SPAWNED)
    assert seen == [f"{spec.session_id}:1", f"{child_id}:1", f"{child_id}:2", f"{spec.session_id}:2"]


async def test_the_conversation_rebuilt_from_events_is_what_was_sent_to_the_model(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Request] = []
    original = ScriptedModel.complete

    async def recording(self: ScriptedModel, request: Request, on_delta: Any = None) -> Any:
        sent.append(request.model_copy(deep=True))
        return await original(self, request, on_delta)

    monkeypatch.setattr(ScriptedModel, "complete", recording)
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("get_project_tree"), text="looking", thinking="the tree first"),
            turn(text="no tool this time"),
            turn(call("report_phase", phase="PLAN", summary="explored")),
            turn(
                call("write_files", path="a.txt", content="a\n"), call("read_files", paths=["a.txt", "nope"])
            ),
            complete("done"),
        ],
    )
    async with SessionService(get_settings()) as service:
        spec = await service.create(_options(repo, script))
        await service.run(spec.session_id)
        events = await service.events(spec.session_id)
    rebuilt = History(phase="EXPLORE")
    calls = 0
    for event in events:
        if event.type == ev.MODEL_RESPONDED:
            assert rebuilt.request_messages() == sent[calls].messages, f"call {calls + 1} differs"
            calls += 1
        rebuilt.apply(event)
    assert calls == len(sent) == 5


async def test_a_cancel_request_in_the_store_stops_the_run_from_another_service(
    repo: Path, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "s.json",
        [turn(call("run_command", command="sleep 30", timeout_seconds=60)), complete("never")],
    )
    settings = get_settings()
    async with SessionService(settings) as runner, SessionService(settings) as other:
        spec = await runner.create(_options(repo, script))
        run = asyncio.ensure_future(runner.run(spec.session_id))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if any(e.type == ev.TOOL_STARTED for e in await other.events(spec.session_id)):
                break
        with pytest.raises(InputError, match="still running"):
            await other.resume(spec.session_id)
        started = asyncio.get_running_loop().time()
        await other.request_cancel(spec.session_id)
        with pytest.raises(asyncio.CancelledError):
            await run
        assert asyncio.get_running_loop().time() - started < 3
        row = await other.get(spec.session_id)
        assert row.status == "cancelled" and row.lease_owner is None
        with pytest.raises(InputError, match="already finished"):
            await other.request_cancel(spec.session_id)


async def test_a_server_without_bubblewrap_refuses_before_any_session_exists(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEN_BWRAP", "/nonexistent/bwrap")
    reset_settings_cache()
    script = write_script(tmp_path / "s.json", [complete("never runs")])
    async with SessionService(get_settings(), mode="server") as service:
        with pytest.raises(ConfigError, match="bubblewrap"):
            await service.create(_options(repo, script))
        assert list(await service.recent()) == []
    async with SessionService(get_settings()) as local:  # local mode falls back and runs
        spec = await local.create(_options(repo, script))
        assert (await local.run(spec.session_id)).status == "completed"


async def test_a_sessions_sandbox_home_is_removed_when_it_ends(
    repo: Path, tmp_path: Path, keen_home: Path
) -> None:
    script = write_script(
        tmp_path / "s.json", [turn(call("run_command", command="touch ~/in-home")), complete("done")]
    )
    async with SessionService(get_settings()) as service:
        if service.sandbox_policy().kind != "bwrap":
            pytest.skip("bubblewrap cannot run here: only its sandbox has a home of its own")
        spec = await service.create(_options(repo, script))
        events: list[Any] = []
        service.watch(events.append)
        await service.run(spec.session_id)
    commands = [
        e for e in events if getattr(e, "type", "") == ev.TOOL_FINISHED and e.data["name"] == "run_command"
    ]
    assert commands and commands[0].data["ok"], commands
    assert not (keen_home / "sandbox" / spec.session_id).exists()

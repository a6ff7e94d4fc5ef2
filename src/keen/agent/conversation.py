"""The conversation agent (SPEC 3.7): a chat about a project with read-only tools.

Like any agent, everything it does is an event of its own session (kind `conversation`), and
its history is the projection of those events (`History`): each user message is a
`conversation.message`, each reply a `model.responded`, each tool call a `tool.started` /
`tool.finished` pair. So the model always gets real user/assistant turns, and the stored log
explains the whole conversation, `clear` included.

It can only look: its registry holds the read-only tools, and a call of any other tool is
answered with an error result, never run. It can also turn the conversation into a vision for
the normal agent (`synthesize_vision`), with a fallback built from the person's own messages
when the model cannot do it.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from keen.agent.budget import Meter
from keen.agent.calls import Caller
from keen.agent.history import History
from keen.agent.prompts.render import render
from keen.agent.runtime import Recorder
from keen.agent.vision import MAX_VISION_CHARS
from keen.errors import InputError, KeenError, ModelCallError
from keen.events import types as ev
from keen.events.sink import EventSink
from keen.events.types import CONVERSATION_BRANCH, Event, SessionRef
from keen.llm.base import (
    Message,
    Model,
    Request,
    TextPart,
    ToolUsePart,
    Turn,
    estimate_tokens,
)
from keen.text import clip, cut_middle
from keen.tools import read_only_tools
from keen.tools.context import SummonRequest, ToolContext, TreeView
from keen.tools.registry import ToolError, ToolResult
from keen.tools.workspace import Workspace

MAX_TOOL_ROUNDS = 10
REPLY_MAX_TOKENS = 16_000  # a chat reply needs far less than the model's limit; keeps holds small
VISION_MAX_TOKENS = 8_000
VISION_MAX_CHARS = 20_000  # room is left for a vision file's template around the vision
TRANSCRIPT_MAX_CHARS = 120_000  # the newest part of a long conversation is what synthesis sees
FALLBACK_MESSAGE_CHARS = 2_000


@dataclass
class Reply:
    """The answer to one user message."""

    text: str
    model_calls: int
    cost_usd: Decimal
    stopped: bool = False  # the tool-round limit ended it before the model answered in words


@dataclass
class Synthesis:
    """A vision drawn from the conversation; `fallback` when it was built without the model."""

    text: str
    fallback: bool
    reason: str | None = None


@dataclass
class Exchange:
    """One visible line of the conversation (tool traffic left out)."""

    role: str  # "user" | "assistant"
    text: str


class ConversationAgent:
    """A read-only chat agent whose session is an event log like any other."""

    branch_name = CONVERSATION_BRANCH
    depth = 0
    max_parallel = 0  # it cannot summon

    def __init__(
        self,
        *,
        workspace: Path,
        model: Model,
        sink: EventSink,
        meter: Meter,
        secret_values: tuple[str, ...] = (),
        retry_base_delay: float = 1.0,
        max_tool_rounds: int = MAX_TOOL_ROUNDS,
        session_id: str,
    ) -> None:
        self.workspace = Workspace(workspace)
        self.model = model.for_agent(CONVERSATION_BRANCH)
        self.model_name = model.name
        self.sink = sink
        self.meter = meter
        self.budget = meter.budget
        self.tools = read_only_tools()
        self.secret_values = secret_values
        self.retry_base_delay = retry_base_delay
        self.max_tool_rounds = max_tool_rounds
        self.session_id = session_id
        self.root_session_id = session_id
        self.history = History()
        self.recorder = Recorder(sink, self.ref, self.history, self._observe)
        self.exchanges: list[Exchange] = []  # what was said since the last `clear`
        self.model_calls = 0
        self._system: str | None = None
        self._started = time.monotonic()
        self._vision: tuple[int, Synthesis] | None = None  # cached by conversation length
        self._caller = Caller(
            self.model, self.meter, sink, self.ref, self.recorder.emit, retry_base_delay=retry_base_delay
        )

    @property
    def ref(self) -> SessionRef:
        return SessionRef(self.session_id, self.root_session_id, None)

    @property
    def short_id(self) -> str:
        return self.session_id[:8]

    @property
    def spent(self) -> Decimal:
        return self.budget.spent

    def user_messages(self) -> list[str]:
        return [e.text for e in self.exchanges if e.role == "user"]

    # -- the session -----------------------------------------------------------------------

    async def start(self, created: dict[str, Any]) -> None:
        """Record the session (`created` is its `session.created` payload, made by the session
        service) and start it."""
        await self._emit(ev.SESSION_CREATED, created)
        await self._emit(ev.SESSION_STARTED, {"pid": os.getpid(), "phase": "EXPLORE"})

    async def finish(self, status: str = "completed", summary: str | None = None) -> None:
        said = len(self.user_messages())
        await self._emit(
            ev.SESSION_FINISHED,
            {
                "status": status,
                "summary": summary or f"conversation ended after {said} message{'s' if said != 1 else ''}",
                "files_created": [],
                "files_modified": [],
                "files_deleted": [],
                "iterations": self.model_calls,
                "cost_usd": self.spent,
                "credits": None,
                "duration_ms": int((time.monotonic() - self._started) * 1000),
            },
        )

    async def clear(self) -> None:
        """Forget the conversation; the log keeps it, marked as cleared."""
        await self._emit(ev.CONVERSATION_CLEARED, {"messages_forgotten": len(self.history.messages)})

    # -- talking ---------------------------------------------------------------------------

    async def send(self, text: str) -> Reply:
        """One user message: the model answers, reading the project as often as it needs to
        (at most `max_tool_rounds` replies with tool calls). Raises `ModelCallError` or
        `BudgetExhausted` when no answer could be had; the message stays in the history."""
        message = text.strip()
        if not message:
            raise InputError("the message is empty")
        await self._emit(ev.CONVERSATION_MESSAGE, {"role": "user", "text": message})
        texts: list[str] = []
        cost = Decimal(0)
        for round_ in range(1, self.max_tool_rounds + 1):
            turn = await self._call_model()
            cost += turn.cost_usd
            if turn.text.strip():
                texts.append(turn.text.strip())
            calls = turn.tool_calls
            if not calls:
                return Reply("\n\n".join(texts), round_, cost)
            last_round = round_ == self.max_tool_rounds
            await self._run_tools(calls, refuse_all=last_round)
        return Reply("\n\n".join(texts), self.max_tool_rounds, cost, stopped=True)

    async def _run_tools(self, calls: list[ToolUsePart], *, refuse_all: bool) -> None:
        try:
            for call in calls:
                await self.recorder.run_tool(call, partial(self._execute, call, refuse_all))
        except asyncio.CancelledError:
            # Interrupted by the person: answer the open calls so the history stays well formed.
            for call in self.history.unfinished_calls():
                await self.recorder.finish_call(call, ToolResult(ok=False, error="interrupted by the user"))
            raise

    async def _execute(self, call: ToolUsePart, refuse_all: bool) -> ToolResult:
        if refuse_all:
            return ToolResult(
                ok=False,
                error=f"not run: the limit of {self.max_tool_rounds} tool rounds for one message "
                "is reached; answer with what you have read so far",
            )
        if call.name not in self.tools:
            return ToolResult(ok=False, error=refusal(call.name, self.tools.names))
        ctx = ToolContext(
            workspace=self.workspace, agent=self, call_id=call.id, secret_values=self.secret_values
        )
        return await self.tools.execute(call.name, call.input, ctx)

    async def _call_model(self) -> Turn:
        return await self._caller.respond(self._request, self._condense, iteration=self.model_calls + 1)

    def _request(self, messages: list[Message] | None = None) -> Request:
        if self._system is None:
            self._system = render(
                "converse_system.j2",
                workspace=self.workspace.root,
                tool_names=self.tools.names,
                max_tool_rounds=self.max_tool_rounds,
                budget=f"{self.budget.limit:.2f}",
            )
        return Request(
            system=self._system,
            tools=self.tools.specs(),
            messages=self.history.request_messages(messages),
            max_tokens=REPLY_MAX_TOKENS,
        )

    async def _condense(self, force: bool = False) -> None:
        """Keep a long conversation within the context window, as the agent loop does."""
        await self.recorder.condense(
            self.model, lambda messages: estimate_tokens(self._request(messages)), force
        )

    # -- visions ---------------------------------------------------------------------------

    async def synthesize_vision(self) -> Synthesis:
        """The vision this conversation arrived at, written by the model from the transcript.

        With a scripted model this consumes the next `converse` turn. The result is reused
        while nothing new has been said. When the model fails (an error, an exhausted budget
        or script, an empty reply) the vision is built from the person's messages instead and
        marked as a fallback.
        """
        if not self.user_messages():
            raise InputError("nothing to turn into a vision yet: say what you want to build or change first")
        said = len(self.exchanges)
        if self._vision is not None and self._vision[0] == said:
            return self._vision[1]
        request = Request(
            system=render("synthesize_vision.j2", workspace=self.workspace.root, max_chars=VISION_MAX_CHARS),
            messages=[Message(role="user", parts=[TextPart(text=self._transcript_for_synthesis())])],
            max_tokens=VISION_MAX_TOKENS,
        )

        try:
            turn = await self._caller.respond(
                lambda: request,
                None,
                iteration=self.model_calls + 1,
                stream=False,
                extra={"side_call": "synthesize_vision"},
            )
            text = turn.text.strip()
            if not text:
                raise ModelCallError("invalid_response", "the model replied with no text")
            synthesis = Synthesis(cut_middle(text, VISION_MAX_CHARS), fallback=False)
            self._vision = (said, synthesis)
        except KeenError as exc:  # ModelCallError, BudgetExhausted, a bad script
            synthesis = self.fallback_vision(exc.message)
        await self._emit(
            ev.CONVERSATION_VISION,
            {"text": synthesis.text, "fallback": synthesis.fallback, "reason": synthesis.reason},
        )
        return synthesis

    def fallback_vision(self, reason: str | None = None) -> Synthesis:
        """A vision made of the person's own messages (newest kept when they are many)."""
        messages = [cut_middle(m, FALLBACK_MESSAGE_CHARS) for m in self.user_messages()]
        first = " ".join(messages[0].split()) if messages else "the work discussed"
        title = clip(first, 80)
        omitted = 0
        while True:
            text = render(
                "vision_fallback.j2",
                title=title,
                reason=cut_middle(reason, 300) if reason else None,
                workspace=self.workspace.root,
                messages=messages[omitted:],
                omitted=omitted,
            )
            if len(text) <= min(VISION_MAX_CHARS, MAX_VISION_CHARS) or omitted >= len(messages) - 1:
                return Synthesis(text, fallback=True, reason=reason)
            omitted += 1

    def _transcript_for_synthesis(self) -> str:
        text = format_transcript(self.exchanges)
        if len(text) > TRANSCRIPT_MAX_CHARS:
            text = "(earlier conversation left out)\n\n" + text[-TRANSCRIPT_MAX_CHARS:]
        return text

    # -- recording -------------------------------------------------------------------------

    async def _emit(self, type: str, data: dict[str, Any]) -> Event:
        return await self.recorder.emit(type, data)

    def apply(self, event: Event) -> None:
        """Apply one of this conversation's events (also used to rebuild it from the log)."""
        self.recorder.apply(event)

    def _observe(self, event: Event) -> None:
        d = event.data
        if event.type == ev.MODEL_RESPONDED:
            self.model_calls += 1
        if event.type == ev.CONVERSATION_MESSAGE and d.get("role") == "user":
            self.exchanges.append(Exchange("user", d["text"]))
        elif event.type == ev.MODEL_RESPONDED and not d.get("side_call") and str(d.get("text", "")).strip():
            self.exchanges.append(Exchange("assistant", str(d["text"]).strip()))
        elif event.type == ev.CONVERSATION_CLEARED:
            self.exchanges = []
            self._vision = None

    # -- AgentControl (the read-only tools use none of it; other tools are never run) ---------

    @property
    def phase(self) -> str:
        return "EXPLORE"

    @property
    def tree(self) -> TreeView | None:
        return None

    async def summon(self, request: SummonRequest) -> dict[str, Any]:
        raise ToolError("the conversation agent cannot summon agents")

    async def emit(self, type: str, data: dict[str, Any]) -> None:
        await self._emit(type, data)

    async def change_phase(self, phase: str, summary: str) -> dict[str, Any]:
        raise ToolError("a conversation has no phases")

    async def request_completion(self, summary: str, success: bool, next_steps: list[str]) -> dict[str, Any]:
        raise ToolError("a conversation does not complete work; the person can run it with `breathe`")


def refusal(name: str, allowed: list[str]) -> str:
    """The error result for a tool the conversation agent may not use."""
    return (
        f"{name} is refused: the conversation agent is read-only and may only use "
        f"{', '.join(allowed)}. It cannot write, edit or delete files, commit or run commands; "
        "to change the project, the person can hand the vision to keen's agent with `breathe`."
    )


def format_transcript(exchanges: list[Exchange]) -> str:
    """The conversation as Markdown, for vision synthesis and a vision file's discussion context."""
    return "\n\n".join(
        f"**{'You' if e.role == 'user' else 'keen'}:** {e.text}" for e in exchanges if e.text.strip()
    )

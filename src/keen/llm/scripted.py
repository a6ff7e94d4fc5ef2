"""The scripted model (SPEC section 12): plays a JSON or YAML script, one turn per call.

It stands in for a real model in tests and offline demos. Every turn is labelled scripted
(`Turn.model` starts with `scripted:`), `error` turns fail the call as the provider would so that
retries are exercised, and each agent of the tree plays its own list, keyed by branch name.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from keen.config import DEFAULT_MODEL
from keen.errors import ConfigError, ModelCallError
from keen.llm import pricing
from keen.llm.base import (
    Delta,
    DeltaCallback,
    Part,
    Request,
    TextPart,
    ThinkingPart,
    ToolUsePart,
    Turn,
    Usage,
)

_ERRORS: dict[str, tuple[int, str]] = {
    "rate_limit": (429, "rate_limit_error: scripted rate limit"),
    "overloaded": (529, "overloaded_error: scripted overload"),
    "server_error": (500, "api_error: scripted server error"),
    "context_length": (400, "invalid_request_error: prompt is too long (scripted)"),
}


class ScriptUsage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_input_tokens: int = Field(default=0, ge=0)
    cache_creation_input_tokens: int = Field(default=0, ge=0)

    def to_usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_input_tokens,
            cache_write_tokens=self.cache_creation_input_tokens,
        )


class ScriptToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ScriptTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    thinking: str | None = None
    tool_calls: list[ScriptToolCall] = Field(default_factory=list)
    usage: ScriptUsage | None = None
    stop_reason: str | None = None
    error: Literal["rate_limit", "overloaded", "server_error", "context_length"] | None = None
    delay_ms: int = Field(default=0, ge=0)


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agents: dict[str, list[ScriptTurn]]
    default_usage: ScriptUsage = Field(
        default_factory=lambda: ScriptUsage(input_tokens=1000, output_tokens=200)
    )
    model: str = DEFAULT_MODEL.partition(":")[2]
    context_window: int = Field(default=200_000, ge=1000)

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        return {"agents": {"main": data}} if isinstance(data, list) else data


def load_script(path: Path) -> Script:
    """Parse and validate a script file; every problem is a `ConfigError` naming the file.

    A script is checked before a run starts and played by the run: the same unchanged file is
    parsed once per process (a long script takes a noticeable time to validate)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read script {path}: {getattr(exc, 'strerror', None) or exc}") from None
    key = (str(path.resolve()), text)
    cached = _parsed.get(key)
    if cached is None:
        if len(_parsed) >= PARSED_KEPT:
            _parsed.clear()
        cached = _parsed[key] = _parse_script(path, text)
    return cached


PARSED_KEPT = 8
_parsed: dict[tuple[str, str], Script] = {}  # scripts parsed in this process, by file and content


def _parse_script(path: Path, text: str) -> Script:
    try:
        if path.suffix in {".yaml", ".yml"}:
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:  # not a ValueError, unlike json's errors
                raise ValueError(str(exc)) from None
        else:
            data = json.loads(text)
    except ValueError as exc:
        kind = path.suffix.lstrip(".") or "JSON"
        raise ConfigError(f"script {path} is not valid {kind}: {' '.join(str(exc).split())}") from None
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"script {path} is invalid: {script_problem(exc)}") from None


def script_problem(exc: ValidationError) -> str:
    """The first problem of a script as one line (`agents.main.0.tool_calls: …`), without
    pydantic's input echo and documentation links."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the script"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


class ScriptedModel:
    """One agent's view of a script. `for_agent` gives the same script for another agent."""

    provider = "scripted"
    scripted = True
    max_output_tokens = 32_000

    def __init__(
        self,
        path: Path | str,
        *,
        script: Script | None = None,
        agent_key: str = "main",
        mode: str = "local",
        price: pricing.Price | None = None,
    ) -> None:
        self.path = Path(path)
        self.script = script or load_script(self.path)
        self.agent_key = agent_key
        self.position = 0
        self.name = f"scripted:{self.path}"
        self.context_window = self.script.context_window
        self.price = price or pricing.require_price(self.script.model, None, mode)

    def for_agent(self, agent_key: str) -> ScriptedModel:
        return ScriptedModel(self.path, script=self.script, agent_key=agent_key, price=self.price)

    @property
    def turns(self) -> list[ScriptTurn]:
        return self.script.agents.get(self.agent_key, [])

    def state(self) -> dict[str, Any]:
        return {"position": self.position}

    def restore(self, state: dict[str, Any] | None) -> None:
        self.position = int((state or {}).get("position", 0))

    async def aclose(self) -> None:
        return None

    def worst_case_cost(self, request: Request) -> Decimal:
        """The exact cost of the next reply the script will give (a script knows its future)."""
        turns = self.turns
        for index in range(self.position, len(turns)):
            if turns[index].error is None:
                return self.price.cost(self._usage(turns[index]))
        return Decimal(0)

    async def complete(self, request: Request, on_delta: DeltaCallback | None = None) -> Turn:
        if self.position >= len(self.turns):
            raise ModelCallError(
                "script_exhausted",
                f"script exhausted: agent {self.agent_key!r} has no turn {self.position + 1} in {self.path}",
            )
        turn = self.turns[self.position]
        self.position += 1
        if turn.delay_ms:
            await asyncio.sleep(turn.delay_ms / 1000)
        if turn.error is not None:
            status, message = _ERRORS[turn.error]
            retry_after = 0.0 if turn.error == "rate_limit" else None
            raise ModelCallError(turn.error, message, status=status, retry_after=retry_after)
        parts = self._parts(turn)
        if on_delta is not None:
            _stream(parts, on_delta)
        usage = self._usage(turn)
        return Turn(
            parts=parts,
            stop_reason=turn.stop_reason or ("tool_use" if turn.tool_calls else "end_turn"),
            usage=usage,
            cost_usd=self.price.cost(usage),
            model=f"scripted:{self.script.model}",
            duration_ms=turn.delay_ms,
            priced=self.price.known,
        )

    def _parts(self, turn: ScriptTurn) -> list[Part]:
        parts: list[Part] = []
        if turn.thinking:
            parts.append(ThinkingPart(thinking=turn.thinking, signature="scripted"))
        if turn.text:
            parts.append(TextPart(text=turn.text))
        for index, call in enumerate(turn.tool_calls):
            call_id = f"toolu_scripted_{self.agent_key}_{self.position}_{index}"
            parts.append(ToolUsePart(id=call_id, name=call.name, input=call.input))
        return parts

    def _usage(self, turn: ScriptTurn) -> Usage:
        return (turn.usage or self.script.default_usage).to_usage()


def _stream(parts: list[Part], on_delta: DeltaCallback) -> None:
    """Send text and thinking word by word, as a streaming provider would."""
    for part in parts:
        if isinstance(part, ThinkingPart):
            kind, text = "thinking", part.thinking
        elif isinstance(part, TextPart):
            kind, text = "text", part.text
        else:
            continue
        for word in text.split(" "):
            on_delta(Delta(kind=kind, text=word + " "))  # type: ignore[arg-type]

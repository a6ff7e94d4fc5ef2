"""Tools: a pydantic input model plus an async function, gathered in a registry.

The registry is the single entry point for running a tool: it validates the model's input
(a bad input is an error result naming the field, never an exception that ends the session),
times the call and turns known failures into error results.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from keen.errors import KeenError
from keen.llm.base import ToolSpec
from keen.secrets import redact, redact_value
from keen.text import cut_middle
from keen.tools.context import ToolContext
from keen.tools.limits import input_problem
from keen.tools.output import fit

RESULT_LIMIT = 40_000  # characters of one result's JSON: what is stored and what the model reads
ERROR_LIMIT = 8_000


class ToolError(Exception):
    """A tool failed in a way the agent should read and can act on."""

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.output = output


ToolFunction = Callable[[ToolContext, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_model: type[BaseModel]
    run: ToolFunction
    read_only: bool = False

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, input_schema=_schema(self.input_model))


def tool(
    name: str, description: str, input_model: type[BaseModel], *, read_only: bool = False
) -> Callable[[ToolFunction], Tool]:
    """Decorator turning `async def fn(ctx, args)` into a `Tool`."""

    def wrap(fn: ToolFunction) -> Tool:
        return Tool(name=name, description=description, input_model=input_model, run=fn, read_only=read_only)

    return wrap


# What `json.dumps(body, ensure_ascii=False, default=str)` builds on every call, built once: a
# resumed session turns thousands of stored results back into their text.
_RESULT_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


@dataclass
class ToolResult:
    ok: bool
    output: Any = None
    error: str | None = None
    duration_ms: int = 0

    def event_data(self, call_id: str, name: str) -> dict[str, Any]:
        """The data of the `tool.finished` event that records this result (every agent's)."""
        return {
            "call_id": call_id,
            "name": name,
            "ok": self.ok,
            "output": self.output,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }

    def content(self) -> str:
        """The text sent back to the model: JSON, cut in the middle when too long."""
        body: dict[str, Any] = {"ok": self.ok}
        if self.error is not None:
            body["error"] = self.error
        if self.output is not None:
            body["output"] = self.output
        return cut_middle(_RESULT_JSON.encode(body), RESULT_LIMIT)


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self._tools:
                raise ValueError(f"tool {t.name!r} registered twice")
            self._tools[t.name] = t

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def specs(self) -> list[ToolSpec]:
        return [t.spec() for t in self._tools.values()]

    def only(self, names: Iterable[str]) -> ToolRegistry:
        wanted = set(names)
        return ToolRegistry(t for t in self._tools.values() if t.name in wanted)

    async def execute(self, name: str, raw_input: Any, ctx: ToolContext) -> ToolResult:
        started = time.perf_counter()
        result = await self._execute(name, raw_input, ctx)
        result.duration_ms = int((time.perf_counter() - started) * 1000)
        _redact_result(result, ctx.secret_values)  # before the cut: no half of a secret is kept
        return _bounded(result)  # last: nothing may grow the result after it is cut

    def validate(self, name: str, raw_input: Any) -> BaseModel:
        """The checked input of a call to `name`; a `ToolError` naming the field when it is bad."""
        t = self._tools.get(name)
        if t is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self._tools)}")
        problem = input_problem(raw_input)
        if problem is not None:
            raise ToolError(f"invalid input for {name}: {problem}")
        try:
            return t.input_model.model_validate(raw_input if raw_input is not None else {})
        except ValidationError as exc:
            raise ToolError(f"invalid input for {name}: {_describe(exc)}") from None

    async def _execute(self, name: str, raw_input: Any, ctx: ToolContext) -> ToolResult:
        try:
            args = self.validate(name, raw_input)
        except ToolError as exc:
            return ToolResult(ok=False, error=exc.message)
        t = self._tools[name]
        try:
            output = await t.run(ctx, args)
        except ToolError as exc:
            return ToolResult(ok=False, error=exc.message, output=exc.output)
        except KeenError as exc:
            return ToolResult(ok=False, error=exc.message)
        except OSError as exc:
            return ToolResult(ok=False, error=f"{type(exc).__name__}: {exc}")
        return ToolResult(ok=True, output=output)


def _bounded(result: ToolResult) -> ToolResult:
    """The result cut to RESULT_LIMIT (SPEC 5: the stored output is cut), its shape kept."""
    if result.error is not None:
        result.error = cut_middle(result.error, ERROR_LIMIT)
    if result.output is not None:
        result.output = fit(result.output, RESULT_LIMIT - len(result.error or "") - 100)
    return result


def _redact_result(result: ToolResult, secret_values: tuple[str, ...]) -> None:
    """No secret of keen's reaches the event log or the model through any tool's result."""
    result.output = redact_value(result.output, secret_values)
    if result.error is not None:
        result.error = redact(result.error, secret_values)


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "input"
        problems.append(f"{field}: {err['msg']}")
    return "; ".join(problems)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The input schema the model sees (a copy: every agent's request has its own)."""
    return copy.deepcopy(_built_schema(model))


@functools.cache
def _built_schema(model: type[BaseModel]) -> dict[str, Any]:
    # Generating a JSON schema takes pydantic a few milliseconds per agent for all the tools.
    schema = model.model_json_schema()
    _strip_titles(schema)
    return schema


def _strip_titles(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("title", None)
        for key, value in node.items():
            if key != "properties":
                _strip_titles(value)
            else:
                for prop in value.values():
                    _strip_titles(prop)
    elif isinstance(node, list):
        for item in node:
            _strip_titles(item)

"""Claude through the official `anthropic` SDK: streaming, thinking, prompt caching, web search.

Imported only when an `anthropic:` model is selected, so the SDK never loads for `keen --help`.
The SDK's own retries are off: `llm.retry` is the one retry policy. The stream is read and
checked by `anthropic_stream`; the request's messages are converted once each (`_Turns`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import anthropic
import httpx2

from keen.errors import ModelCallError
from keen.llm import pricing
from keen.llm.anthropic_stream import StreamReader, violation
from keen.llm.base import (
    DeltaCallback,
    Message,
    Part,
    ProviderPart,
    RedactedThinkingPart,
    Request,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
    Turn,
    Usage,
)
from keen.llm.memo import ConversationMemo
from keen.llm.provider import ProviderModel, next_stream_item
from keen.llm.retry import retry_after_seconds, transport_error

PROVIDER = "anthropic"
WEB_SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search"}
INTERLEAVED_THINKING_BETA = "interleaved-thinking-2025-05-14"
LONG_CONTEXT_BETA = "context-1m-2025-08-07"
THINKING_BUDGET = 16_000  # manual thinking: most tokens one thinking block may use
MIN_THINKING_BUDGET = 1_024  # the API's minimum budget
_EPHEMERAL = {"type": "ephemeral"}
_CACHEABLE_BLOCKS = frozenset({"text", "tool_result", "tool_use", "image", "document"})


@dataclass(frozen=True)
class Capabilities:
    """What a Claude model supports, as far as keen's requests depend on it."""

    thinking: Literal["adaptive", "manual"]
    context_window: int = 200_000
    max_output_tokens: int = 32_000
    # Manual thinking interleaved with tool use needs this beta on the Claude 4 models.
    interleaved_beta: bool = False
    # The 1M window of the Claude 4 models is behind a beta header; later models have it natively.
    long_context_beta: bool = False


# The one capability table: first pattern matching the start of the model name wins.
_CAPABILITIES: tuple[tuple[str, Capabilities], ...] = (
    (r"claude-haiku-5", Capabilities("adaptive")),
    (r"claude-[a-z]+-5", Capabilities("adaptive", context_window=1_000_000)),
    (
        r"claude-(opus|sonnet)-4-[6-9]",
        Capabilities("adaptive", context_window=1_000_000, long_context_beta=True),
    ),
    (
        r"claude-sonnet-4",
        Capabilities("manual", context_window=1_000_000, interleaved_beta=True, long_context_beta=True),
    ),
    (r"claude-(opus|haiku)-4", Capabilities("manual", interleaved_beta=True)),
)
_FALLBACK = Capabilities("manual")


def capabilities(model: str) -> Capabilities:
    for pattern, caps in _CAPABILITIES:
        if re.match(pattern + r"(?![0-9])", model):
            return caps
    return _FALLBACK


class AnthropicModel(ProviderModel):
    """A Claude model. One instance serves every agent of a session (it holds no conversation)."""

    provider = PROVIDER

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        web_search: bool = True,
        timeout: float = 600.0,
        mode: str = "local",
    ) -> None:
        self.model = model
        self.name = f"{PROVIDER}:{model}"
        self.base_url = base_url  # None: the SDK's default endpoint
        self.capabilities = capabilities(model)
        self.context_window = self.capabilities.context_window
        self.max_output_tokens = self.capabilities.max_output_tokens
        self.web_search = web_search
        self.price = pricing.require_price(model, PROVIDER, mode)
        self._turns: ConversationMemo[_Turns] = ConversationMemo(_Turns)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    async def complete(self, request: Request, on_delta: DeltaCallback | None = None) -> Turn:
        started = time.monotonic()
        reader = StreamReader()
        try:
            stream = await self._client.messages.create(**self.request_params(request), stream=True)
            async with stream:
                while (event := await next_stream_item(stream, PROVIDER)) is not None:
                    delta = reader.add(event)
                    if delta is not None and on_delta is not None:
                        on_delta(delta)
        except (anthropic.APIError, httpx2.TransportError) as exc:
            raise map_error(exc) from exc
        if not reader.finished:
            raise ModelCallError("connection", "anthropic: the stream ended before message_stop")
        return self._turn(reader, int((time.monotonic() - started) * 1000))

    def request_params(self, request: Request) -> dict[str, Any]:
        """The keyword arguments of `messages.create()` for `request` (streamed)."""
        max_tokens = request.max_tokens or self.max_output_tokens
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": marked_newest_user_turn(self._turns.fold(request.messages).turns),
        }
        tools = self._tools(request)
        if tools:
            params["tools"] = tools
        if request.system:
            # The breakpoint on the system block caches the whole tools + system prefix.
            params["system"] = [{"type": "text", "text": request.system, "cache_control": _EPHEMERAL}]
        elif tools:
            tools[-1] = {**tools[-1], "cache_control": _EPHEMERAL}
        thinking, betas = self._thinking(max_tokens)
        if thinking is not None:
            params["thinking"] = thinking
        if self.capabilities.long_context_beta:
            betas.append(LONG_CONTEXT_BETA)
        if betas:
            params["extra_headers"] = {"anthropic-beta": ",".join(betas)}
        return params

    def _tools(self, request: Request) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in request.tools
        ]
        if self.web_search and all(t.name != WEB_SEARCH_TOOL["name"] for t in request.tools):
            tools.append(dict(WEB_SEARCH_TOOL))
        return tools

    def _thinking(self, max_tokens: int) -> tuple[dict[str, Any] | None, list[str]]:
        if self.capabilities.thinking == "adaptive":
            # "summarized" so that thinking is streamed for live display on every model.
            return {"type": "adaptive", "display": "summarized"}, []
        budget = min(THINKING_BUDGET, max_tokens // 2)
        if budget < MIN_THINKING_BUDGET:
            return None, []  # too small an output allowance to think and still answer
        betas = [INTERLEAVED_THINKING_BETA] if self.capabilities.interleaved_beta else []
        return {"type": "enabled", "budget_tokens": budget}, betas

    def _turn(self, reader: StreamReader, duration_ms: int) -> Turn:
        usage = usage_from_stream(reader)
        return Turn(
            parts=parts_from_blocks(reader.blocks),
            stop_reason=reader.stop_reason,
            usage=usage,
            cost_usd=self.price.cost(usage),
            model=self.name,
            duration_ms=duration_ms,
            priced=self.price.known,
        )


# --- responses -> keen ---------------------------------------------------------------------------


def parts_from_blocks(blocks: list[dict[str, Any]]) -> list[Part]:
    """keen parts from the reply's content blocks (the API's JSON), in order."""
    parts: list[Part] = []
    for index, block in enumerate(blocks):
        kind = block["type"]
        if kind == "text":
            parts.append(TextPart(text=_field(block, "text", index)))  # citations are not kept
        elif kind == "thinking":
            signature = _field(block, "signature", index, optional=True)
            parts.append(ThinkingPart(thinking=_field(block, "thinking", index), signature=signature or None))
        elif kind == "redacted_thinking":
            parts.append(RedactedThinkingPart(data=_field(block, "data", index)))
        elif kind == "tool_use":
            name = _field(block, "name", index)
            if not isinstance(block.get("input"), dict):
                violation(f"the input of tool call {name!r} is not a JSON object")
            parts.append(ToolUsePart(id=_field(block, "id", index), name=name, input=block["input"]))
        else:
            # Server tool use and results (web search, …): only Claude understands them; keep as sent.
            parts.append(ProviderPart(provider=PROVIDER, block=block))
    return parts


def _field(block: dict[str, Any], name: str, index: int, *, optional: bool = False) -> str:
    value = block.get(name)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        violation(f"{block['type']} block {index} has no {name} string")
    return value


def usage_from_stream(reader: StreamReader) -> Usage:
    """Usage by token class. A reply without usage is an error: it would otherwise cost nothing."""
    usage = reader.final_usage()
    return Usage(
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read_tokens=usage.get("cache_read_input_tokens", 0),
        cache_write_tokens=usage.get("cache_creation_input_tokens", 0),
        web_search_requests=reader.web_search_requests,
    )


# --- keen -> requests ----------------------------------------------------------------------------


@dataclass
class _Turns:
    """A conversation as Anthropic turns, message by message (a `Fold` for `ConversationMemo`):
    same-role neighbours merged (the API rejects two turns of the same role in a row) and tool
    results first in a user turn. A built turn is never changed (one that grows is rebuilt), so
    the list can be sent as it is, request after request."""

    turns: list[dict[str, Any]] = field(default_factory=list)
    _starts: list[int] = field(default_factory=list)  # the message each turn starts at
    _last_turn: list[int] = field(default_factory=list)  # per message: the last turn after it (-1: none)

    def rewind(self, keep: int) -> int:
        if keep >= len(self._last_turn):
            return keep
        # The turn holding message keep-1 may hold later messages too: rebuild it from its start.
        turn = self._last_turn[keep - 1] if keep else -1
        start = self._starts[turn] if turn >= 0 else 0
        del self.turns[max(turn, 0) :], self._starts[max(turn, 0) :], self._last_turn[start:]
        return start

    def add(self, message: Message) -> None:
        blocks = [b for b in (_block(p) for p in message.parts) if b is not None]
        if blocks and self.turns and self.turns[-1]["role"] == message.role:
            self.turns[-1] = _turn(message.role, [*self.turns[-1]["content"], *blocks])
        elif blocks:
            self.turns.append(_turn(message.role, blocks))
            self._starts.append(len(self._last_turn))
        self._last_turn.append(len(self.turns) - 1)


def _turn(role: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    if role == "user":
        # Tool results must open a user turn; merging may have put text before them.
        blocks = sorted(blocks, key=lambda b: b["type"] != "tool_result")
    return {"role": role, "content": blocks}


def marked_newest_user_turn(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of `turns` with a cache breakpoint on the newest user turn's last cacheable block
    (the turns themselves are left as they are)."""
    out = list(turns)
    for position in range(len(out) - 1, -1, -1):
        turn = out[position]
        if turn["role"] != "user":
            continue
        content = turn["content"]
        for index in range(len(content) - 1, -1, -1):
            if content[index]["type"] in _CACHEABLE_BLOCKS:
                marked = {**content[index], "cache_control": _EPHEMERAL}
                out[position] = {**turn, "content": [*content[:index], marked, *content[index + 1 :]]}
                break
        break
    return out


def _block(part: Part) -> dict[str, Any] | None:
    """The content block for one part; None for parts Claude cannot take back."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text} if part.text else None  # empty text is rejected
    if isinstance(part, ThinkingPart):
        if not part.signature:
            return None  # unsigned thinking (another provider, a script) cannot be verified
        return {"type": "thinking", "thinking": part.thinking, "signature": part.signature}
    if isinstance(part, RedactedThinkingPart):
        return {"type": "redacted_thinking", "data": part.data}
    if isinstance(part, ToolUsePart):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.input}
    if isinstance(part, ToolResultPart):
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.tool_use_id}
        if part.content:
            block["content"] = part.content
        block["is_error"] = part.is_error
        return block
    if isinstance(part, ProviderPart):
        return dict(part.block) if part.provider == PROVIDER else None
    return None


# --- errors --------------------------------------------------------------------------------------

_CONTEXT_LENGTH = re.compile(r"prompt is too long|exceeds? (the )?(context|model'?s?) (limit|window)", re.I)
_KIND_BY_ERROR_TYPE = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limit",
    "api_error": "server_error",
    "timeout_error": "timeout",
    "authentication_error": "auth",
    "permission_error": "auth",
}


def map_error(exc: Exception) -> ModelCallError:
    """The `ModelCallError` for an SDK or transport failure, carrying the provider's message."""
    transport = transport_error(
        exc,
        PROVIDER,
        timeouts=(anthropic.APITimeoutError, httpx2.TimeoutException),
        connections=(anthropic.APIConnectionError, httpx2.TransportError),
    )
    if transport is not None:
        return transport
    if isinstance(exc, anthropic.APIStatusError):
        message = exc.api_message or exc.message
        kind = error_kind(exc.status_code, exc.type, message)
        retry_after = retry_after_seconds(exc.response.headers) if kind in ModelCallError.RETRYABLE else None
        label = f"{exc.status_code} {exc.type}" if exc.type else str(exc.status_code)
        return ModelCallError(
            kind, f"anthropic {label}: {message}", status=exc.status_code, retry_after=retry_after
        )
    return ModelCallError("invalid_response", f"anthropic: {exc}")


def error_kind(status: int, error_type: str | None, message: str) -> str:
    """Decide the kind from the error type (stream `error` events come with status 200), then status."""
    if error_type in _KIND_BY_ERROR_TYPE:
        return _KIND_BY_ERROR_TYPE[error_type]
    if status == 529:
        return "overloaded"
    if status == 429:
        return "rate_limit"
    if status == 408:
        return "timeout"
    if status >= 500 or status < 400:
        return "server_error"  # includes an unknown error event inside a 200 stream
    if status in (401, 403):
        return "auth"
    if _CONTEXT_LENGTH.search(message):
        return "context_length"
    return "bad_request"

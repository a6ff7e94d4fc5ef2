"""OpenAI and OpenAI-compatible servers (Ollama, vLLM, llama.cpp, LM Studio) via the `openai` SDK.

Chat Completions, always streamed, with the usage chunk at the end of the stream. Imported only
when an `openai:` model is selected. The SDK's own retries are off: `llm.retry` decides.

Tool-call arguments that are not a JSON object do not fail the call: the tool call gets the input
`{"_invalid_json_arguments": <the raw text>}`, which the tool's input validation rejects with an
error the model sees and can correct (small local models do produce broken JSON now and then).
A chunk whose fields have the wrong types breaks the protocol and fails the call.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
import openai

from keen.errors import ModelCallError
from keen.llm import pricing
from keen.llm.base import (
    Delta,
    DeltaCallback,
    Message,
    Part,
    Request,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
    Turn,
    Usage,
)
from keen.llm.memo import ConversationMemo
from keen.llm.provider import ProviderModel, next_stream_item, protocol_violation
from keen.llm.retry import retry_after_seconds, transport_error

PROVIDER = "openai"
INVALID_JSON_KEY = "_invalid_json_arguments"
# Finish reasons in the vocabulary the rest of keen uses (Anthropic's stop reasons).
_STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
}

# (name prefix, context window, output limit); first match wins; anything else gets the defaults.
_LIMITS: tuple[tuple[str, int, int], ...] = (
    ("gpt-4.1", 1_047_576, 32_768),
    ("gpt-5", 400_000, 128_000),
    ("o1", 200_000, 100_000),
    ("o3", 200_000, 100_000),
    ("o4", 200_000, 100_000),
    ("gpt-4o", 128_000, 16_384),
)
DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_MAX_OUTPUT_TOKENS = 16_384


def limits(model: str) -> tuple[int, int]:
    for prefix, window, output in _LIMITS:
        if model.startswith(prefix):
            return window, output
    return DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_OUTPUT_TOKENS


class OpenAIModel(ProviderModel):
    """A chat-completions model. `base_url` points it at any OpenAI-compatible server."""

    provider = PROVIDER

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = 600.0,
        mode: str = "local",
    ) -> None:
        self.model = model
        self.name = f"{PROVIDER}:{model}"
        self.context_window, self.max_output_tokens = limits(model)
        self.base_url = base_url
        self.price = pricing.require_price(model, PROVIDER, mode)
        self._entries: ConversationMemo[_Entries] = ConversationMemo(_Entries)
        # Local servers take no key, but the SDK insists on one: a placeholder is sent instead.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "no-key", base_url=base_url, timeout=timeout, max_retries=0
        )

    async def complete(self, request: Request, on_delta: DeltaCallback | None = None) -> Turn:
        started = time.monotonic()
        reply = _Reply()
        try:
            stream = await self._client.chat.completions.create(**self.request_params(request))
            async with stream:
                while (chunk := await next_stream_item(stream, PROVIDER)) is not None:
                    for delta in reply.add(chunk):
                        if on_delta is not None:
                            on_delta(delta)
        except (openai.APIError, httpx2.TransportError) as exc:
            raise map_error(exc) from exc
        if reply.finish_reason is None:
            raise ModelCallError("connection", "openai: the stream ended before the reply was finished")
        return self._turn(reply, int((time.monotonic() - started) * 1000))

    def request_params(self, request: Request) -> dict[str, Any]:
        """The keyword arguments of `chat.completions.create()` for `request`."""
        system = [{"role": "system", "content": request.system}] if request.system else []
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [*system, *self._entries.fold(request.messages).entries],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }
                for t in request.tools
            ]
        if request.max_tokens is not None:
            # OpenAI's reasoning models only take the newer name; compatible servers know the older.
            key = "max_completion_tokens" if self.base_url is None else "max_tokens"
            params[key] = request.max_tokens
        return params

    def _turn(self, reply: _Reply, duration_ms: int) -> Turn:
        usage = reply.usage()
        finish = reply.finish_reason
        return Turn(
            parts=reply.parts(),
            stop_reason=_STOP_REASONS.get(finish, finish) if finish else None,
            usage=usage,
            cost_usd=self.price.cost(usage),
            model=self.name,
            duration_ms=duration_ms,
            priced=self.price.known,
        )


T = TypeVar("T")


def _checked(value: Any, kind: type[T], what: str) -> T | None:
    """`value` when it is None or a `kind`; anything else breaks the protocol."""
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    protocol_violation(PROVIDER, f"{what} is {type(value).__name__}, not {kind.__name__}")


@dataclass
class _ToolCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class _Reply:
    """A streamed reply being assembled from its chunks."""

    text: str = ""
    reasoning: str = ""
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    raw_usage: Any = None

    def add(self, chunk: Any) -> list[Delta]:
        """Take in one chunk; return the live fragments it carried."""
        if getattr(chunk, "usage", None) is not None:
            self.raw_usage = chunk.usage
        deltas: list[Delta] = []
        for choice in _checked(getattr(chunk, "choices", None), list, "a chunk's choices") or []:
            if _checked(getattr(choice, "index", None), int, "a choice's index") not in (0, None):
                continue
            finish = _checked(getattr(choice, "finish_reason", None), str, "finish_reason")
            if finish:
                self.finish_reason = finish
            delta = getattr(choice, "delta", None)
            if delta is None:
                continue
            # Reasoning text of compatible servers (vLLM: reasoning_content, Ollama: reasoning).
            extra = getattr(delta, "model_extra", None) or {}
            thought = extra.get("reasoning_content") or extra.get("reasoning")
            if isinstance(thought, str) and thought:
                self.reasoning += thought
                deltas.append(Delta(kind="thinking", text=thought))
            content = _checked(getattr(delta, "content", None), str, "a delta's content")
            if content:
                self.text += content
                deltas.append(Delta(kind="text", text=content))
            for call in _checked(getattr(delta, "tool_calls", None), list, "a delta's tool_calls") or []:
                self._add_tool_call(call)
        return deltas

    def _add_tool_call(self, call: Any) -> None:
        index = _checked(getattr(call, "index", None), int, "a tool call's index")
        current = self.tool_calls.setdefault(index or 0, _ToolCall())
        call_id = _checked(getattr(call, "id", None), str, "a tool call's id")
        if call_id:
            current.id = call_id
        function = getattr(call, "function", None)
        if function is not None:
            current.name += _checked(getattr(function, "name", None), str, "a tool call's name") or ""
            current.arguments += (
                _checked(getattr(function, "arguments", None), str, "a tool call's arguments") or ""
            )

    def parts(self) -> list[Part]:
        parts: list[Part] = []
        if self.reasoning:
            parts.append(ThinkingPart(thinking=self.reasoning))
        if self.text:
            parts.append(TextPart(text=self.text))
        for index in sorted(self.tool_calls):
            call = self.tool_calls[index]
            if not call.name:
                protocol_violation(PROVIDER, "a streamed tool call has no function name")
            call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"  # some local servers send no id
            parts.append(ToolUsePart(id=call_id, name=call.name, input=parse_arguments(call.arguments)))
        return parts

    def usage(self) -> Usage:
        """Usage by token class: OpenAI's prompt tokens include the cached ones."""
        raw = self.raw_usage
        prompt = _checked(getattr(raw, "prompt_tokens", None), int, "usage prompt_tokens")
        completion = _checked(getattr(raw, "completion_tokens", None), int, "usage completion_tokens")
        if prompt is None or completion is None:
            protocol_violation(PROVIDER, "the stream carried no token usage (stream_options.include_usage)")
        if prompt < 0 or completion < 0:
            protocol_violation(PROVIDER, f"negative token usage ({prompt} prompt, {completion} completion)")
        details = getattr(raw, "prompt_tokens_details", None)
        cached = _checked(getattr(details, "cached_tokens", None), int, "usage cached_tokens") or 0
        cached = min(max(cached, 0), prompt)
        return Usage(input_tokens=prompt - cached, output_tokens=completion, cache_read_tokens=cached)


def parse_arguments(raw: str) -> dict[str, Any]:
    """A tool call's input from its JSON arguments; see the module docstring for bad JSON."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {INVALID_JSON_KEY: raw}
    return value if isinstance(value, dict) else {INVALID_JSON_KEY: raw}


# --- keen -> requests ----------------------------------------------------------------------------


@dataclass
class _Entries:
    """A conversation as chat messages, message by message (a `Fold` for `ConversationMemo`)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    _offsets: list[int] = field(default_factory=list)  # per message: where its entries start

    def rewind(self, keep: int) -> int:
        if keep < len(self._offsets):
            del self.entries[self._offsets[keep] :], self._offsets[keep:]
        return keep

    def add(self, message: Message) -> None:
        self._offsets.append(len(self.entries))
        convert = _assistant_message if message.role == "assistant" else _user_messages
        self.entries.extend(convert(message))


def _assistant_message(message: Message) -> list[dict[str, Any]]:
    text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": json.dumps(p.input)}}
        for p in message.parts
        if isinstance(p, ToolUsePart)
    ]
    if not text and not calls:
        return []
    entry: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        entry["tool_calls"] = calls
    return [entry]


def _user_messages(message: Message) -> list[dict[str, Any]]:
    # Tool results first: they must directly follow the assistant message that made the calls.
    out: list[dict[str, Any]] = [
        {
            "role": "tool",
            "tool_call_id": p.tool_use_id,
            "content": f"ERROR: {p.content}" if p.is_error else p.content,
        }
        for p in message.parts
        if isinstance(p, ToolResultPart)
    ]
    text = "\n".join(p.text for p in message.parts if isinstance(p, TextPart) and p.text)
    if text:
        out.append({"role": "user", "content": text})
    return out


# --- errors --------------------------------------------------------------------------------------

_CONTEXT_LENGTH = re.compile(r"context length|context window|maximum context|too many tokens", re.I)
_KIND_BY_CODE = {
    "context_length_exceeded": "context_length",
    "insufficient_quota": "bad_request",  # a 429 that waiting does not fix
    "rate_limit_exceeded": "rate_limit",
    "server_error": "server_error",
}


def map_error(exc: Exception) -> ModelCallError:
    """The `ModelCallError` for an SDK or transport failure, carrying the provider's message."""
    transport = transport_error(
        exc,
        PROVIDER,
        timeouts=(openai.APITimeoutError, httpx2.TimeoutException),
        connections=(openai.APIConnectionError, httpx2.TransportError),
    )
    if transport is not None:
        return transport
    if isinstance(exc, openai.APIError):
        message = _provider_message(exc)
        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        kind = error_kind(status, exc.code, exc.type, message)
        retry_after = None
        if isinstance(exc, openai.APIStatusError) and kind in ModelCallError.RETRYABLE:
            retry_after = retry_after_seconds(exc.response.headers)
        return ModelCallError(
            kind, f"openai {status or 'stream error'}: {message}", status=status, retry_after=retry_after
        )
    return ModelCallError("invalid_response", f"openai: {exc}")


def _provider_message(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message


def error_kind(status: int | None, code: str | None, error_type: str | None, message: str) -> str:
    if code in _KIND_BY_CODE:
        return _KIND_BY_CODE[code]
    if status is None:
        return "server_error"  # an error event inside a stream that had started fine
    if status == 429:
        return "rate_limit"
    if status == 529 or error_type == "overloaded_error":
        return "overloaded"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth"
    if _CONTEXT_LENGTH.search(message):
        return "context_length"
    return "bad_request"

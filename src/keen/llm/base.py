"""Provider-neutral conversation types and the `Model` protocol.

The agent speaks only these types; each provider module translates them to and from its SDK.
Parts are pydantic models with a `type` tag so a conversation serialises to JSON (events) and
back (resume) without loss — thinking signatures and provider-side blocks included.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, PrivateAttr, TypeAdapter


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ThinkingPart(BaseModel):
    """A thinking block. `signature` must be sent back unchanged with tool results."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str | None = None


class RedactedThinkingPart(BaseModel):
    type: Literal["redacted_thinking"] = "redacted_thinking"
    data: str


class ToolUsePart(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class ToolResultPart(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str
    is_error: bool = False


class ProviderPart(BaseModel):
    """A block only its provider understands (server-side tool use and results, e.g. web search).

    Kept verbatim and sent back to the same provider unchanged; other providers drop it.
    """

    type: Literal["provider"] = "provider"
    provider: str
    block: dict[str, Any]


Part = Annotated[
    TextPart | ThinkingPart | RedactedThinkingPart | ToolUsePart | ToolResultPart | ProviderPart,
    Field(discriminator="type"),
]
_PARTS = TypeAdapter(list[Part])


def parts_from_json(data: list[dict[str, Any]]) -> list[Part]:
    return _PARTS.validate_python(data)


def parts_to_json(parts: list[Part]) -> list[dict[str, Any]]:
    # Python mode: JSON mode refuses a tool input nested over 255 levels (a hostile model's
    # reply must still be recorded); the event sink makes the data JSON-safe and bounds depth.
    return [p.model_dump() for p in parts]


class Message(BaseModel):
    role: Literal["user", "assistant"]
    parts: list[Part]
    # Size for token estimates, computed once: messages are not changed after they are built
    # (condensing makes new ones), and a long session estimates every call.
    _chars: int | None = PrivateAttr(default=None)

    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    def chars(self) -> int:
        if self._chars is None:
            self._chars = sum(_part_chars(p) for p in self.parts)
        return self._chars


class ToolSpec(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]
    _chars: int | None = PrivateAttr(default=None)

    def chars(self) -> int:
        if self._chars is None:
            self._chars = len(self.name) + len(self.description) + len(str(self.input_schema))
        return self._chars


class Request(BaseModel):
    system: str
    tools: list[ToolSpec] = Field(default_factory=list)
    messages: list[Message]
    max_tokens: int | None = None  # None: the model's own output limit


class Usage(BaseModel):
    """Tokens by class. `input_tokens` excludes cache reads and writes (Anthropic's convention)."""

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)
    web_search_requests: int = Field(default=0, ge=0)

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            web_search_requests=self.web_search_requests + other.web_search_requests,
        )


class Turn(BaseModel):
    """One model reply: its content parts in order, why it stopped, what it used and cost."""

    parts: list[Part]
    stop_reason: str | None
    usage: Usage
    cost_usd: Decimal
    model: str
    duration_ms: int = 0
    priced: bool = True  # False when no price is known for the model (cost_usd is then 0)

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def thinking(self) -> str:
        return "".join(p.thinking for p in self.parts if isinstance(p, ThinkingPart))

    @property
    def tool_calls(self) -> list[ToolUsePart]:
        return [p for p in self.parts if isinstance(p, ToolUsePart)]

    def as_message(self) -> Message:
        return Message(role="assistant", parts=list(self.parts))


class Delta(BaseModel):
    """A streamed fragment for live subscribers; never stored."""

    kind: Literal["text", "thinking"]
    text: str


DeltaCallback = Callable[[Delta], None]


@runtime_checkable
class Model(Protocol):
    """What the agent needs from a model. Implementations: anthropic, openai, scripted."""

    name: str  # "provider:model" as the user gave it
    provider: str
    context_window: int
    max_output_tokens: int
    scripted: bool

    def for_agent(self, agent_key: str) -> Model:
        """The model as seen by one agent of the tree (`main`, `summon-A`, `converse`, …).

        Real providers return themselves; the scripted model returns that agent's script.
        """
        ...

    async def complete(self, request: Request, on_delta: DeltaCallback | None = None) -> Turn:
        """One call. Raises `ModelCallError` on failure (no retries here: see `llm.retry`)."""
        ...

    def worst_case_cost(self, request: Request) -> Decimal:
        """The most this call can cost: all input uncached plus the whole output allowance."""
        ...

    def state(self) -> dict[str, Any] | None:
        """Position to store with each reply so a resumed session continues where it stopped."""
        ...

    def restore(self, state: dict[str, Any] | None) -> None: ...

    async def aclose(self) -> None: ...


class ProviderModel:
    """What the real providers share: one stateless instance serves every agent of a session,
    and the worst case of a call is priced from the provider's price table."""

    name: str
    provider: str
    model: str
    context_window: int
    max_output_tokens: int
    scripted = False
    _client: Any

    def for_agent(self, agent_key: str) -> Model:
        return self

    def state(self) -> dict[str, Any] | None:
        return None

    def restore(self, state: dict[str, Any] | None) -> None:
        return None

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(self, request: Request, on_delta: DeltaCallback | None = None) -> Turn:
        raise NotImplementedError  # each provider's adapter implements the call itself

    def worst_case_cost(self, request: Request) -> Decimal:
        from keen.llm import pricing

        output = request.max_tokens or self.max_output_tokens
        return pricing.worst_case_cost(self.model, self.provider, estimate_tokens(request), output)


async def next_stream_item(stream: Any, provider: str) -> Any | None:
    """The next item of an SDK stream, or None at its end; a malformed stream is an invalid
    response (not retried), unlike a dropped connection."""
    from keen.errors import ModelCallError

    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
    except (
        AttributeError,
        TypeError,
        ValueError,
        KeyError,
    ) as exc:  # pydantic's ValidationError is a ValueError
        raise ModelCallError("invalid_response", f"{provider}: malformed stream: {exc}") from exc


def estimate_tokens(request: Request) -> int:
    """A deliberately high token estimate (3 characters per token) for budgeting and condensing."""
    chars = len(request.system) + sum(t.chars() for t in request.tools)
    chars += sum(m.chars() for m in request.messages)
    return tokens_for(chars, len(request.messages))


def tokens_for(chars: int, message_count: int) -> int:
    """The token estimate for a request of `chars` characters in `message_count` messages."""
    return chars // 3 + 16 * message_count + 64


def _part_chars(part: Part) -> int:
    if isinstance(part, TextPart):
        return len(part.text)
    if isinstance(part, ThinkingPart):
        return len(part.thinking) + len(part.signature or "") // 4
    if isinstance(part, ToolUsePart):
        return len(part.name) + len(str(part.input))
    if isinstance(part, ToolResultPart):
        return len(part.content)
    if isinstance(part, RedactedThinkingPart):
        return len(part.data) // 4
    return len(str(part.block))

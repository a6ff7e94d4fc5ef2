"""Provider-neutral conversation types and the `Model` protocol.

The agent speaks only these types; each provider module translates them to and from its SDK.
Parts are pydantic models with a `type` tag so a conversation serialises to JSON (events) and
back (resume) without loss — thinking signatures and provider-side blocks included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, TypeAdapter

from keen.llm.memo import ConversationMemo


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


def reply_record(parts: list[Part]) -> dict[str, Any]:
    """`tool_calls` and `parts` of a reply's `model.responded` event: the tool calls in full
    (SPEC 5), the parts in their order with each tool call standing as its id, so that no tool
    input is stored twice."""
    # Python mode: JSON mode refuses a tool input nested over 255 levels (a hostile model's
    # reply must still be recorded); the event sink makes the data JSON-safe and bounds depth.
    return {
        "tool_calls": [p.model_dump() for p in parts if isinstance(p, ToolUsePart)],
        "parts": [
            {"type": "tool_use", "id": p.id} if isinstance(p, ToolUsePart) else p.model_dump() for p in parts
        ],
    }


def parts_from_record(data: Mapping[str, Any]) -> list[Part]:
    """The parts of a recorded reply (`reply_record`), in order."""
    return parts_from_json(_recorded_parts(data))


def reply_message(data: Mapping[str, Any]) -> Message:
    """The assistant message of a recorded reply, validated in one pass with its parts (a resumed
    session rebuilds thousands of them)."""
    return Message.model_validate({"role": "assistant", "parts": _recorded_parts(data)})


def _recorded_parts(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Older events carry each tool call whole in `parts` as well; a call given by id only is the
    next one of `tool_calls`."""
    calls = iter(data.get("tool_calls") or ())
    return [
        next(calls, part) if part.get("type") == "tool_use" and "input" not in part else part
        for part in data["parts"]
    ]


class Message(BaseModel):
    role: Literal["user", "assistant"]
    parts: list[Part]

    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    def chars(self) -> int:
        """Size for token estimates, computed once: messages are not changed after they are built
        (condensing makes new ones). Kept in the instance dict as a cached property would be
        (pydantic compares and dumps fields only), not in a private attribute, which pydantic
        reads an order of magnitude slower, nor through `functools.cached_property`, which takes
        a lock on every read on Python 3.11; a long session reads many."""
        cached: int | None = self.__dict__.get("char_count")
        if cached is None:
            cached = self.__dict__["char_count"] = sum(_part_chars(p) for p in self.parts)
        return cached


class ToolSpec(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]

    def chars(self) -> int:
        return self.char_count

    @cached_property
    def char_count(self) -> int:
        return len(self.name) + len(self.description) + len(str(self.input_schema))


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


def estimate_tokens(request: Request) -> int:
    """A deliberately high token estimate (3 characters per token) for budgeting and condensing.

    The messages' size is kept per conversation (`ConversationMemo`): estimating the next request
    of a session costs the same at step 5 and step 5,000."""
    chars = len(request.system) + sum(t.chars() for t in request.tools)
    chars += _SIZES.fold(request.messages).total
    return tokens_for(chars, len(request.messages))


class _Sizes:
    """A conversation's running size in characters (a `Fold`)."""

    def __init__(self) -> None:
        self.running = [0]  # running[i]: the size of the first i messages

    @property
    def total(self) -> int:
        return self.running[-1]

    def rewind(self, keep: int) -> int:
        del self.running[keep + 1 :]
        return keep

    def add(self, message: Message) -> None:
        self.running.append(self.running[-1] + message.chars())


_SIZES: ConversationMemo[_Sizes] = ConversationMemo(_Sizes, slots=32)


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

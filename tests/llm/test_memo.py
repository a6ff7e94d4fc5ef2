"""What is derived from a conversation (sizes, provider messages) is kept and only extended.

Each request of a long session must cost the same as the first, so the fold of a conversation
is kept and only its new messages are folded; whatever changes (condensing, shortening, another
agent's conversation in between), the result must equal folding the whole request afresh.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keen.llm.anthropic import AnthropicModel
from keen.llm.base import (
    Message,
    Request,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
    estimate_tokens,
    tokens_for,
)
from keen.llm.memo import ConversationMemo
from keen.llm.openai import OpenAIModel

TOOLS = [ToolSpec(name="read_file", description="Read a file", input_schema={"type": "object"})]


class CountingFold:
    """Counts the messages it is given, to show which ones are folded again."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.added = 0

    def rewind(self, keep: int) -> int:
        del self.sizes[keep:]
        return keep

    def add(self, message: Message) -> None:
        self.added += 1
        self.sizes.append(message.chars())


def user(text: str) -> Message:
    return Message(role="user", parts=[TextPart(text=text)])


def step(number: int) -> tuple[Message, Message]:
    """An assistant turn with a tool call and the user turn with its result."""
    call = ToolUsePart(id=f"toolu_{number}", name="read_file", input={"path": f"f{number}.py"})
    return (
        Message(role="assistant", parts=[TextPart(text=f"step {number}"), call]),
        Message(role="user", parts=[ToolResultPart(tool_use_id=call.id, content=f"contents {number}")]),
    )


def test_a_growing_conversation_folds_each_new_message_once():
    memo: ConversationMemo[CountingFold] = ConversationMemo(CountingFold)
    history = [user("the vision")]
    for number in range(300):
        pending = user(f"note {number}")  # rebuilt for every request, as the agent does
        fold = memo.fold([*history, pending])
        history.extend(step(number))

    # Per request: the stored copy of the last pending turn, the reply, the new pending turn.
    assert fold.added <= 3 * 300
    assert len(fold.sizes) == len(history) + 1 - 2


def test_conversations_of_several_agents_are_kept_apart():
    memo: ConversationMemo[CountingFold] = ConversationMemo(CountingFold)
    main, child = [user("main vision")], [user("child vision")]
    for number in range(50):
        main.extend(step(number))
        child.extend(step(number))
        assert memo.fold(main).sizes == [m.chars() for m in main]
        assert memo.fold(child).sizes == [m.chars() for m in child]
    assert memo.fold(main).added == len(main)  # each message of each conversation folded once


def test_the_least_recently_used_conversation_is_forgotten_beyond_the_slots():
    memo: ConversationMemo[CountingFold] = ConversationMemo(CountingFold, slots=2)
    first, second, third = [user("one")], [user("two")], [user("three")]
    kept = memo.fold(first)
    memo.fold(second)
    memo.fold(third)

    assert memo.fold(first) is not kept and memo.fold(third).added == 1


# --- any change to a conversation: the kept fold equals a fresh one ------------------------------

# An operation on the conversation: append a step, append a user note (two user turns in a
# row), replace a message (condensing), drop the tail, or switch to the other agent.
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("step"), st.integers(0, 0)),
        st.tuples(st.just("note"), st.integers(0, 0)),
        st.tuples(st.just("replace"), st.integers(0, 50)),
        st.tuples(st.just("truncate"), st.integers(1, 50)),
        st.tuples(st.just("switch"), st.integers(0, 0)),
        st.tuples(st.just("thinking"), st.integers(0, 0)),
    ),
    max_size=40,
)


def _apply(conversation: list[Message], op: str, arg: int, number: int) -> None:
    if op == "step":
        conversation.extend(step(number))
    elif op == "note":
        conversation.append(user(f"note {number}"))
    elif op == "thinking":  # unsigned thinking: Claude gets nothing for it, so neighbours merge
        conversation.append(Message(role="assistant", parts=[ThinkingPart(thinking="hm")]))
    elif op == "replace" and conversation:
        index = arg % len(conversation)
        old = conversation[index]
        conversation[index] = Message(role=old.role, parts=[*old.parts, TextPart(text=f"condensed {number}")])
    elif op == "truncate" and len(conversation) > 1:
        del conversation[max(1, len(conversation) - arg) :]


def _request(conversation: list[Message]) -> Request:
    return Request(system="Be brief.", tools=TOOLS, messages=[*conversation, user("pending")])


def _naive_estimate(request: Request) -> int:
    chars = len(request.system) + sum(t.chars() for t in request.tools)
    return tokens_for(chars + sum(m.chars() for m in request.messages), len(request.messages))


def _afresh(request: Request) -> Request:
    """The same request as a conversation never seen before (its first message is a copy)."""
    first, *rest = request.messages
    return request.model_copy(update={"messages": [first.model_copy(), *rest]})


@pytest.fixture(scope="module")
def models() -> Iterator[tuple[AnthropicModel, OpenAIModel]]:
    """One of each, for all examples (building request parameters makes no connection)."""
    yield AnthropicModel("claude-sonnet-5-5", api_key="sk-test"), OpenAIModel("gpt-4o", api_key="sk-test")


@settings(max_examples=50, deadline=None)
@given(ops=_OPS)
def test_kept_folds_equal_fresh_ones_whatever_changes(
    models: tuple[AnthropicModel, OpenAIModel], ops: list[tuple[str, int]]
) -> None:
    claude, gpt = models
    agents = [[user("main vision")], [user("child vision")]]
    current = 0
    sent: list[tuple[dict[str, Any], str]] = []
    for number, (op, arg) in enumerate(ops):
        if op == "switch":
            current = 1 - current
        _apply(agents[current], op, arg, number)
        request = _request(agents[current])
        params = claude.request_params(request)
        assert params == claude.request_params(_afresh(request))
        assert gpt.request_params(request) == gpt.request_params(_afresh(request))
        assert estimate_tokens(request) == _naive_estimate(request)
        sent.append((params, json.dumps(params, sort_keys=True)))
    # What was handed to the SDK earlier was never changed by the requests after it.
    assert all(json.dumps(params, sort_keys=True) == text for params, text in sent)

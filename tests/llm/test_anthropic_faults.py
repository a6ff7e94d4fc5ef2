"""Failures of Anthropic calls, injected by the local server, through keen's retry policy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fakes.provider_server import (
    FakeProviderServer,
    Reply,
    anthropic_message_events,
    error_reply,
    sse_events,
    sse_reply,
)

from keen.errors import ModelCallError
from keen.llm.anthropic import AnthropicModel
from keen.llm.base import Delta, Message, Request, TextPart
from keen.llm.retry import MAX_ATTEMPTS, complete_with_retries

REQUEST = Request(system="Be brief.", messages=[Message(role="user", parts=[TextPart(text="Say hello.")])])


def hello_message(text: str = "Hello there, how can I help?") -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "output_tokens": 9,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
    }


def hello_stream(**kwargs: Any) -> Reply:
    return sse_reply(sse_events(anthropic_message_events(hello_message())), **kwargs)


class Retries:
    """Records what `complete_with_retries` reports and the waits it asks for (without waiting)."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.delays: list[float] = []
        self.slept: list[float] = []

    def on_retry(self, attempt: int, error: ModelCallError, delay: float) -> None:
        self.kinds.append(error.kind)
        self.delays.append(delay)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
async def model(provider_server: FakeProviderServer) -> AsyncIterator[AnthropicModel]:
    model = AnthropicModel("claude-sonnet-5-5", api_key="sk-test", base_url=provider_server.url)
    yield model
    await model.aclose()


async def call(model: AnthropicModel, retries: Retries, on_delta: Callable[[Delta], None] | None = None):
    return await complete_with_retries(
        model, REQUEST, on_delta, base_delay=0.001, on_retry=retries.on_retry, sleep=retries.sleep
    )


async def test_rate_limit_waits_as_retry_after_says_then_succeeds(provider_server, model):
    provider_server.queue(
        error_reply(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            headers={"retry-after": "7"},
        ),
        hello_stream(),
    )
    retries = Retries()

    turn = await call(model, retries)

    assert turn.text == "Hello there, how can I help?"
    assert retries.kinds == ["rate_limit"]
    assert retries.delays == retries.slept == [7.0]
    assert len(provider_server.requests) == 2
    assert all(
        r.headers["x-stainless-retry-count"] == "0" for r in provider_server.requests
    )  # no SDK retries


async def test_overloaded_529_is_retried(provider_server, model):
    provider_server.queue(error_reply(529, "overloaded_error", "Overloaded"), hello_stream())
    retries = Retries()

    turn = await call(model, retries)

    assert retries.kinds == ["overloaded"] and turn.stop_reason == "end_turn"
    assert 0 < retries.delays[0] <= 0.001  # exponential backoff from the base delay, no retry-after


async def test_server_error_500_is_retried(provider_server, model):
    provider_server.queue(error_reply(500, "api_error", "Internal server error"), hello_stream())
    retries = Retries()

    turn = await call(model, retries)

    assert retries.kinds == ["server_error"] and turn.usage.output_tokens == 9


async def test_connection_dropped_mid_stream_is_retried(provider_server, model):
    provider_server.queue(hello_stream(chunk_size=60, drop_after=3), hello_stream())
    retries = Retries()
    deltas: list[Delta] = []

    turn = await call(model, retries, deltas.append)

    assert retries.kinds == ["connection"]
    assert turn.text == "Hello there, how can I help?"
    assert turn.usage.input_tokens == 20
    assert len(provider_server.requests) == 2


async def test_dropped_stream_error_names_the_failure(provider_server, model):
    provider_server.queue(hello_stream(chunk_size=60, drop_after=3))

    with pytest.raises(ModelCallError) as caught:
        await model.complete(REQUEST)

    assert caught.value.kind == "connection" and caught.value.retryable
    assert "connection" in caught.value.message


async def test_overloaded_error_event_inside_the_stream_is_retried(provider_server, model):
    events = anthropic_message_events(hello_message())[:3]  # message_start, a block start, one delta
    events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    provider_server.queue(sse_reply(sse_events(events)), hello_stream())
    retries = Retries()

    turn = await call(model, retries)

    assert retries.kinds == ["overloaded"] and turn.text.startswith("Hello")


async def test_bad_request_fails_at_once_with_the_provider_message(provider_server, model):
    provider_server.queue(
        error_reply(
            400, "invalid_request_error", "messages.0.content: text content blocks must be non-empty"
        ),
        hello_stream(),
    )
    retries = Retries()

    with pytest.raises(ModelCallError) as caught:
        await call(model, retries)

    assert caught.value.kind == "bad_request" and caught.value.status == 400
    assert "text content blocks must be non-empty" in caught.value.message
    assert len(provider_server.requests) == 1 and retries.kinds == []


@pytest.mark.parametrize(
    ("status", "error_type", "message", "kind"),
    [
        (
            400,
            "invalid_request_error",
            "prompt is too long: 215000 tokens > 200000 maximum",
            "context_length",
        ),
        (401, "authentication_error", "invalid x-api-key", "auth"),
        (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
            "auth",
        ),
        (404, "not_found_error", "model: claude-nonexistent", "bad_request"),
        (503, "api_error", "Service unavailable", "server_error"),
    ],
)
async def test_error_statuses_map_to_kinds(provider_server, model, status, error_type, message, kind):
    provider_server.queue(error_reply(status, error_type, message))

    with pytest.raises(ModelCallError) as caught:
        await model.complete(REQUEST)

    assert caught.value.kind == kind and caught.value.status == status
    assert message in caught.value.message


async def test_persistent_server_errors_give_up_after_six_attempts(provider_server, model):
    provider_server.queue(*[error_reply(500, "api_error", "Internal server error")] * 10)
    retries = Retries()

    with pytest.raises(ModelCallError) as caught:
        await call(model, retries)

    assert caught.value.kind == "server_error"
    assert len(provider_server.requests) == MAX_ATTEMPTS == 6
    assert len(retries.kinds) == MAX_ATTEMPTS - 1


async def test_stream_without_usage_is_an_invalid_response(provider_server, model):
    message = hello_message()
    del message["usage"]
    provider_server.queue(sse_reply(sse_events(anthropic_message_events(message))))
    retries = Retries()

    with pytest.raises(ModelCallError) as caught:
        await call(model, retries)

    assert caught.value.kind == "invalid_response" and not caught.value.retryable
    assert retries.kinds == [] and len(provider_server.requests) == 1


async def test_stream_ending_before_message_stop_is_a_dropped_connection(provider_server, model):
    events = anthropic_message_events(hello_message())[:-1]
    provider_server.queue(sse_reply(sse_events(events)))

    with pytest.raises(ModelCallError) as caught:
        await model.complete(REQUEST)

    assert caught.value.kind == "connection"


async def test_slow_server_times_out(provider_server):
    provider_server.queue(Reply(delay=1.0, body=b"{}"))
    model = AnthropicModel("claude-sonnet-5-5", api_key="sk-test", base_url=provider_server.url, timeout=0.2)
    try:
        with pytest.raises(ModelCallError) as caught:
            await model.complete(REQUEST)
    finally:
        await model.aclose()

    assert caught.value.kind == "timeout" and caught.value.retryable


async def test_unreachable_server_is_a_connection_error(provider_server):
    url = provider_server.url
    provider_server.close()
    model = AnthropicModel("claude-sonnet-5-5", api_key="sk-test", base_url=url)
    try:
        with pytest.raises(ModelCallError) as caught:
            await model.complete(REQUEST)
    finally:
        await model.aclose()

    assert caught.value.kind == "connection"


# --- protocol violations: each fails the call at once, saying what was wrong --------------------


def hello_events() -> list[dict[str, Any]]:
    """message_start, text block start, delta(s), block stop, message_delta, message_stop."""
    return anthropic_message_events(hello_message(), piece=100)


def tool_events(partial_json: str) -> list[dict[str, Any]]:
    message = hello_message()
    message["content"] = [{"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}}]
    events = anthropic_message_events(message)
    events.insert(
        2,
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": partial_json},
        },
    )
    return events


def without(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] != kind]


def replaced(events: list[dict[str, Any]], position: int, **changes: Any) -> list[dict[str, Any]]:
    out = [dict(e) for e in events]
    out[position] = {**out[position], **changes}
    return out


_TEXT_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "more"}}

VIOLATIONS = {
    "only message_stop": ([{"type": "message_stop"}], "message_stop event before message_start"),
    "block before message_start": (hello_events()[1:], "content_block_start event before message_start"),
    "delta for a block never started": (
        without(hello_events(), "content_block_start"),
        "content_block_delta for content block 0, which was never started",
    ),
    "delta after its block stopped": (
        [*hello_events()[:-2], _TEXT_DELTA, *hello_events()[-2:]],
        "content_block_delta for content block 0, which is already stopped",
    ),
    "block index out of sequence": (
        replaced(hello_events(), 1, index=2),
        "content_block_start for block 2, expected block 0",
    ),
    "second message_start": (
        [hello_events()[0], *hello_events()],
        "a second message_start",
    ),
    "event after message_stop": (
        [
            *hello_events(),
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
        ],
        "message_delta event after message_stop",
    ),
    "message_stop with a block open": (
        without(hello_events(), "content_block_stop"),
        "message_stop while content block 0 is still open",
    ),
    "no message_delta": (
        without(hello_events(), "message_delta"),
        "message_stop before message_delta (the stop reason and final usage)",
    ),
    "message_delta without usage": (
        replaced(hello_events(), -2, usage=None),
        "message_delta without usage",
    ),
    "text delta into a tool call": (
        [*tool_events('{"path": "a"}')[:2], {**_TEXT_DELTA}, *tool_events('{"path": "a"}')[2:]],
        "text_delta for block 0, a tool_use block",
    ),
    "tool input that is not JSON": (
        tool_events('{"path": '),
        "the input of tool_use block 0 is not valid JSON",
    ),
    "tool input that is not an object": (
        tool_events('["a.py"]'),
        "the input of tool_use block 0 is not a JSON object",
    ),
    "usage that is not a count": (
        replaced(hello_events(), -2, usage={"output_tokens": "nine"}),
        "usage output_tokens is 'nine', not a count",
    ),
    "no usage anywhere": (
        [
            *anthropic_message_events({**hello_message(), "usage": None})[:-2],
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
            {"type": "message_stop"},
        ],
        "the reply carried no token usage (input_tokens and output_tokens)",
    ),
}


@pytest.mark.parametrize("case", VIOLATIONS, ids=list(VIOLATIONS))
async def test_protocol_violation_fails_at_once_naming_it(provider_server, model, case):
    events, what = VIOLATIONS[case]
    provider_server.queue(sse_reply(sse_events(events)), hello_stream())
    retries = Retries()

    with pytest.raises(ModelCallError) as caught:
        await call(model, retries)

    assert caught.value.kind == "invalid_response" and not caught.value.retryable
    assert caught.value.message == f"anthropic: protocol violation: {what}"
    assert retries.kinds == [] and len(provider_server.requests) == 1


async def test_stream_data_that_is_not_json_is_a_protocol_violation(provider_server, model):
    body = sse_events(hello_events()[:2]) + 'event: content_block_delta\ndata: {"type": "content_bl\n\n'
    provider_server.queue(sse_reply(body))

    with pytest.raises(ModelCallError) as caught:
        await model.complete(REQUEST)

    assert caught.value.kind == "invalid_response"
    assert caught.value.message.startswith("anthropic: protocol violation: unreadable stream event")


async def test_unknown_event_and_delta_types_are_skipped(provider_server, model):
    events = hello_events()
    events.insert(1, {"type": "message_annotation", "note": "newer than keen"})
    events.insert(3, {"type": "content_block_delta", "index": 0, "delta": {"type": "sparkle_delta", "x": 1}})
    provider_server.queue(sse_reply(sse_events(events)))

    turn = await model.complete(REQUEST)

    assert turn.text == "Hello there, how can I help?" and turn.usage.output_tokens == 9


_EVENT_LISTS = st.lists(st.sampled_from(range(len(tool_events('{"path": "a.py"}')))), max_size=14)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=_EVENT_LISTS, drop_usage=st.booleans())
async def test_any_reordering_of_the_events_is_a_turn_or_a_model_call_error(
    provider_server, model, picks, drop_usage
):
    valid = tool_events('{"path": "a.py"}')
    events = [dict(valid[i]) for i in picks]
    if drop_usage:
        events = [{**e, "usage": None} if e["type"] == "message_delta" else e for e in events]
    provider_server.queue(sse_reply(sse_events(events)))

    try:
        turn = await model.complete(REQUEST)
    except ModelCallError as error:
        assert error.kind in ("invalid_response", "connection")
        assert error.message.startswith("anthropic: ")
    else:  # a valid stream after all (blocks may be missing or empty, never half-read)
        assert all(c.id == "toolu_1" and c.input in ({}, {"path": "a.py"}) for c in turn.tool_calls)
        assert turn.usage.output_tokens == 9 and turn.stop_reason == "end_turn"

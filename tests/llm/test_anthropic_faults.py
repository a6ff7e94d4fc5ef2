"""Failures of Anthropic calls, injected by the local server, through keen's retry policy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
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

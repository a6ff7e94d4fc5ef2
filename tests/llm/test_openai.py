"""The OpenAI adapter against the local server speaking the chat-completions streaming protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fakes.provider_server import FakeProviderServer, Reply, json_reply, openai_sse, sse_reply

from keen.errors import ModelCallError
from keen.llm.base import (
    Delta,
    Message,
    ProviderPart,
    Request,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
)
from keen.llm.openai import INVALID_JSON_KEY, OpenAIModel
from keen.llm.retry import complete_with_retries

# gpt-4o list prices, USD per million tokens.
GPT_4O_MTOK = {"input": Decimal("2.50"), "cached": Decimal("1.25"), "output": Decimal(10)}

TOOLS = [
    ToolSpec(
        name="read_file",
        description="Read a file",
        input_schema={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    ),
    ToolSpec(name="list_dir", description="List a directory", input_schema={"type": "object"}),
]
REQUEST = Request(
    system="You are a coding agent.",
    tools=TOOLS,
    messages=[Message(role="user", parts=[TextPart(text="Look at the project.")])],
)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_1",
        "choices": choices,
        "usage": None,
        **extra,
    }


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    return chunk(usage=usage)


def call_delta(
    index: int, arguments: str, *, call_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """A delta carrying one piece of tool call `index`: its id and name come with the first piece."""
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def tool_call_stream() -> list[dict[str, Any]]:
    """Text, then two tool calls whose JSON arguments arrive in pieces, then usage."""
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me look "}),
        chunk({"content": "at the files."}),
        chunk(call_delta(0, "", call_id="call_Vx1", name="read_file")),
        chunk(call_delta(0, '{"pa')),
        chunk(call_delta(0, 'th": "src/ma')),
        chunk(call_delta(0, 'in.py"}')),
        chunk(call_delta(1, "", call_id="call_Vx2", name="list_dir")),
        chunk(call_delta(1, "{}")),
        chunk({}, finish="tool_calls"),
        usage_chunk(prompt=1500, completion=60, cached=1024),
    ]


def openai_error(
    status: int, message: str, code: str | None, *, headers: dict[str, str] | None = None
) -> Reply:
    body = {"error": {"message": message, "type": "requests", "param": None, "code": code}}
    return json_reply(body, status=status, headers=headers)


@pytest.fixture
async def make_model(provider_server: FakeProviderServer) -> AsyncIterator[Callable[..., OpenAIModel]]:
    models: list[OpenAIModel] = []

    def make(name: str = "gpt-4o", **kwargs: Any) -> OpenAIModel:
        model = OpenAIModel(name, api_key="sk-test", base_url=f"{provider_server.url}/v1", **kwargs)
        models.append(model)
        return model

    yield make
    for model in models:
        await model.aclose()


async def test_streamed_tool_calls_text_and_cached_usage(provider_server, make_model):
    provider_server.queue(sse_reply(openai_sse(tool_call_stream()), chunk_size=90))
    deltas: list[Delta] = []

    turn = await make_model("gpt-4o").complete(REQUEST, deltas.append)

    assert turn.text == "Let me look at the files."
    assert deltas == [Delta(kind="text", text="Let me look "), Delta(kind="text", text="at the files.")]
    assert turn.tool_calls == [
        ToolUsePart(id="call_Vx1", name="read_file", input={"path": "src/main.py"}),
        ToolUsePart(id="call_Vx2", name="list_dir", input={}),
    ]
    assert turn.stop_reason == "tool_use"
    assert turn.usage.input_tokens == 1500 - 1024
    assert turn.usage.cache_read_tokens == 1024
    assert turn.usage.output_tokens == 60 and turn.usage.cache_write_tokens == 0
    expected = (
        476 * GPT_4O_MTOK["input"] + 1024 * GPT_4O_MTOK["cached"] + 60 * GPT_4O_MTOK["output"]
    ) / 1_000_000
    assert turn.priced and turn.cost_usd == expected > 0
    assert turn.model == "openai:gpt-4o"


async def test_request_carries_tools_tool_results_and_usage_option(provider_server, make_model):
    provider_server.queue(
        sse_reply(openai_sse(tool_call_stream())), sse_reply(openai_sse(tool_call_stream()))
    )
    model = make_model("gpt-4o")
    turn = await model.complete(REQUEST)
    results = [
        ToolResultPart(tool_use_id="call_Vx1", content="print('hi')"),
        ToolResultPart(tool_use_id="call_Vx2", content="no such directory", is_error=True),
        TextPart(text="Carry on."),
    ]
    assistant = turn.as_message()
    assistant.parts.insert(0, ThinkingPart(thinking="hmm", signature="sig"))
    assistant.parts.append(ProviderPart(provider="anthropic", block={"type": "server_tool_use"}))
    follow_up = REQUEST.model_copy(
        update={
            "messages": [*REQUEST.messages, assistant, Message(role="user", parts=results)],
            "max_tokens": 900,
        }
    )

    await model.complete(follow_up)

    first, second = (r.body for r in provider_server.requests)
    assert provider_server.requests[0].path == "/v1/chat/completions"
    assert provider_server.requests[0].headers["authorization"] == "Bearer sk-test"
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert first["tools"][0] == {
        "type": "function",
        "function": {"name": "read_file", "description": "Read a file", "parameters": TOOLS[0].input_schema},
    }
    assert "max_tokens" not in first and "max_completion_tokens" not in first
    assert second["max_tokens"] == 900  # compatible servers know this name
    assert second["messages"] == [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Look at the project."},
        {
            "role": "assistant",
            "content": "Let me look at the files.",
            "tool_calls": [
                {
                    "id": "call_Vx1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "src/main.py"}'},
                },
                {"id": "call_Vx2", "type": "function", "function": {"name": "list_dir", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_Vx1", "content": "print('hi')"},
        {"role": "tool", "tool_call_id": "call_Vx2", "content": "ERROR: no such directory"},
        {"role": "user", "content": "Carry on."},
    ]


def test_official_endpoint_gets_max_completion_tokens():
    model = OpenAIModel("o3", api_key="sk-test")
    params = model.request_params(REQUEST.model_copy(update={"max_tokens": 500}))
    assert params["max_completion_tokens"] == 500 and "max_tokens" not in params
    assert (model.context_window, model.max_output_tokens) == (200_000, 100_000)


async def test_unknown_local_model_is_unpriced_and_streams_reasoning(provider_server, make_model):
    stream = [
        chunk({"role": "assistant", "content": "", "reasoning": "The user wants "}),
        chunk({"reasoning": "a greeting."}),
        chunk({"content": "Hello!"}),
        chunk({}, finish="stop"),
        usage_chunk(prompt=30, completion=8),
    ]
    provider_server.queue(sse_reply(openai_sse(stream)))
    deltas: list[Delta] = []
    model = make_model("llama3.2")

    turn = await model.complete(REQUEST, deltas.append)

    assert turn.text == "Hello!" and turn.thinking == "The user wants a greeting."
    assert [d.kind for d in deltas] == ["thinking", "thinking", "text"]
    assert turn.stop_reason == "end_turn"
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (30, 8)
    assert turn.priced is False and turn.cost_usd == 0
    assert model.context_window == 128_000
    assert model.worst_case_cost(REQUEST) == 0


async def test_tool_arguments_that_are_not_json_are_marked_not_fatal(provider_server, make_model):
    stream = [
        chunk(call_delta(0, '{"path": "a.py"', call_id="call_1", name="read_file")),
        chunk({}, finish="tool_calls"),
        usage_chunk(prompt=10, completion=5),
    ]
    provider_server.queue(sse_reply(openai_sse(stream)))

    turn = await make_model().complete(REQUEST)

    assert turn.tool_calls[0].input == {INVALID_JSON_KEY: '{"path": "a.py"'}


async def test_stream_without_usage_is_an_invalid_response(provider_server, make_model):
    provider_server.queue(sse_reply(openai_sse([chunk({"content": "Hi"}), chunk({}, finish="stop")])))

    with pytest.raises(ModelCallError) as caught:
        await make_model().complete(REQUEST)

    assert caught.value.kind == "invalid_response"


async def test_rate_limit_is_retried_after_the_wait_asked_for(provider_server, make_model):
    provider_server.queue(
        openai_error(
            429,
            "Rate limit reached for gpt-4o on tokens per min.",
            "rate_limit_exceeded",
            headers={"retry-after": "3"},
        ),
        sse_reply(openai_sse(tool_call_stream())),
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    turn = await complete_with_retries(make_model(), REQUEST, base_delay=0.001, sleep=sleep)

    assert waits == [3.0] and len(turn.tool_calls) == 2
    assert len(provider_server.requests) == 2


@pytest.mark.parametrize(
    ("status", "message", "code", "kind"),
    [
        (429, "Rate limit reached for gpt-4o on requests per min.", "rate_limit_exceeded", "rate_limit"),
        (
            429,
            "You exceeded your current quota, please check your plan.",
            "insufficient_quota",
            "bad_request",
        ),
        (500, "The server had an error while processing your request.", None, "server_error"),
        (503, "The engine is currently overloaded.", None, "server_error"),
        (401, "Incorrect API key provided: sk-test.", "invalid_api_key", "auth"),
        (
            400,
            "This model's maximum context length is 128000 tokens.",
            "context_length_exceeded",
            "context_length",
        ),
        (400, "Invalid value for 'tool_choice'.", None, "bad_request"),
    ],
)
async def test_error_statuses_map_to_kinds(provider_server, make_model, status, message, code, kind):
    provider_server.queue(openai_error(status, message, code, headers={"retry-after": "1"}))

    with pytest.raises(ModelCallError) as caught:
        await make_model().complete(REQUEST)

    assert caught.value.kind == kind and caught.value.status == status
    assert message in caught.value.message
    assert caught.value.retry_after == (1.0 if caught.value.retryable else None)
    assert len(provider_server.requests) == 1  # the SDK does not retry on its own


async def test_error_inside_the_stream_is_a_retryable_server_error(provider_server, make_model):
    body = openai_sse([chunk({"content": "Hi"})])[: -len("data: [DONE]\n\n")]
    body += (
        'data: {"error": {"message": "The server had an error", "type": "server_error", "code": null}}\n\n'
    )
    provider_server.queue(sse_reply(body))

    with pytest.raises(ModelCallError) as caught:
        await make_model().complete(REQUEST)

    assert caught.value.kind == "server_error" and "The server had an error" in caught.value.message


async def test_dropped_stream_is_a_connection_error(provider_server, make_model):
    provider_server.queue(sse_reply(openai_sse(tool_call_stream()), chunk_size=80, drop_after=2))

    with pytest.raises(ModelCallError) as caught:
        await make_model().complete(REQUEST)

    assert caught.value.kind == "connection" and caught.value.retryable


async def test_stream_closed_before_the_finish_reason_is_a_connection_error(provider_server, make_model):
    provider_server.queue(sse_reply(openai_sse(tool_call_stream()[:5])))

    with pytest.raises(ModelCallError) as caught:
        await make_model().complete(REQUEST)

    assert caught.value.kind == "connection"


# --- protocol violations: each fails the call at once, saying what was wrong --------------------

OPENAI_VIOLATIONS = {
    "content that is not text": (
        [chunk({"content": 42}), chunk({}, finish="stop"), usage_chunk(10, 2)],
        "a delta's content is int, not str",
    ),
    "choices that are not a list": (
        [{**chunk({"content": "Hi"}), "choices": {"index": 0}}, usage_chunk(10, 2)],
        "a chunk's choices is dict, not list",
    ),
    "tool call index that is not a number": (
        [chunk({"tool_calls": [{"index": "first", "function": {"name": "list_dir"}}]}), usage_chunk(10, 2)],
        "a tool call's index is str, not int",
    ),
    "tool call arguments that are not text": (
        [
            chunk(call_delta(0, "", call_id="c1", name="list_dir")),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": {"a": 1}}}]}),
        ],
        "a tool call's arguments is dict, not str",
    ),
    "usage that is not a count": (
        [
            chunk({"content": "Hi"}, finish="stop"),
            chunk(usage={"prompt_tokens": "ten", "completion_tokens": 2}),
        ],
        "usage prompt_tokens is str, not int",
    ),
    "negative usage": (
        [chunk({"content": "Hi"}, finish="stop"), usage_chunk(-5, 2)],
        "negative token usage (-5 prompt, 2 completion)",
    ),
    "a tool call without a name": (
        [
            chunk(
                {"tool_calls": [{"index": 0, "id": "c1", "function": {"arguments": "{}"}}]},
                finish="tool_calls",
            ),
            usage_chunk(10, 2),
        ],
        "a streamed tool call has no function name",
    ),
}


@pytest.mark.parametrize("case", OPENAI_VIOLATIONS, ids=list(OPENAI_VIOLATIONS))
async def test_protocol_violation_fails_at_once_naming_it(provider_server, make_model, case):
    chunks, what = OPENAI_VIOLATIONS[case]
    provider_server.queue(sse_reply(openai_sse(chunks)), sse_reply(openai_sse(tool_call_stream())))

    with pytest.raises(ModelCallError) as caught:
        await complete_with_retries(make_model(), REQUEST, base_delay=0.001)

    assert caught.value.kind == "invalid_response" and not caught.value.retryable
    assert caught.value.message == f"openai: protocol violation: {what}"
    assert len(provider_server.requests) == 1


async def test_stream_data_that_is_not_json_is_a_protocol_violation(provider_server, make_model):
    provider_server.queue(
        sse_reply(openai_sse([chunk({"content": "Hi"})])[: -len("data: [DONE]\n\n")] + 'data: {"id": \n\n')
    )

    with pytest.raises(ModelCallError) as caught:
        await make_model().complete(REQUEST)

    assert caught.value.kind == "invalid_response"
    assert caught.value.message.startswith("openai: protocol violation: unreadable stream event")


_JUNK = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["index", "id", "name"]), st.integers(), max_size=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    position=st.integers(0, 10),
    field=st.sampled_from(["content", "tool_calls", "role", "index", "finish_reason", "usage"]),
    junk=_JUNK,
)
async def test_any_mistyped_field_is_a_turn_or_a_model_call_error(
    provider_server, make_model, position, field, junk
):
    chunks = tool_call_stream()
    target = chunks[position % len(chunks)]
    if field == "usage":
        target["usage"] = junk
    elif field in ("index", "finish_reason") and target["choices"]:
        target["choices"][0][field] = junk
    elif target["choices"]:
        target["choices"][0]["delta"][field] = junk
    provider_server.queue(sse_reply(openai_sse(chunks)))

    try:
        turn = await make_model().complete(REQUEST)
    except ModelCallError as error:
        assert error.kind in ("invalid_response", "connection") and error.message.startswith("openai: ")
    else:
        assert turn.usage.input_tokens >= 0 and all(isinstance(c.input, dict) for c in turn.tool_calls)

"""The Anthropic adapter against exchanges recorded from the live Messages API.

Each recorded response is served over real HTTP by the local fake server to the real
`AsyncAnthropic` client inside `AnthropicModel`. The one non-streamed recording is served as the
equivalent event stream (keen always streams), built from its recorded body.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fakes.provider_server import (
    FakeProviderServer,
    Reply,
    anthropic_message_events,
    sse_events,
    sse_reply,
)

from keen.llm import pricing
from keen.llm.anthropic import AnthropicModel
from keen.llm.base import (
    Delta,
    Message,
    ProviderPart,
    RedactedThinkingPart,
    Request,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
    Turn,
    estimate_tokens,
)

# Claude Sonnet 4 / 4.6 list prices, USD: per million tokens, and per web search.
SONNET_MTOK = {
    "input": Decimal(3),
    "output": Decimal(15),
    "cache_read": Decimal("0.30"),
    "cache_write": Decimal("3.75"),
}
WEB_SEARCH_EACH = Decimal("0.01")


def _recordings_dir() -> Path:
    """The recorded exchanges, kept byte-for-byte in tests/fixtures (see the README there)."""
    candidate = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic-recorded"
    if not candidate.is_dir():
        pytest.fail(f"recorded Anthropic exchanges not found at {candidate}")
    return candidate


def load(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((_recordings_dir() / name).read_text())["interactions"]


def recorded_reply(interaction: dict[str, Any]) -> Reply:
    response = interaction["response"]
    assert response["status"]["code"] == 200
    if "body" in response:
        return sse_reply(response["body"]["string"])
    return sse_reply(sse_events(anthropic_message_events(response["parsed_body"])))


def recorded_events(interaction: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream events of a recorded response (synthesised for the non-streamed one)."""
    response = interaction["response"]
    if "body" not in response:
        return anthropic_message_events(response["parsed_body"])
    lines = response["body"]["string"].splitlines()
    return [json.loads(line[len("data:") :]) for line in lines if line.startswith("data:")]


def expected_deltas(events: list[dict[str, Any]]) -> list[Delta]:
    out = []
    for event in events:
        delta = event.get("delta", {}) if event["type"] == "content_block_delta" else {}
        if delta.get("type") == "text_delta" and delta["text"]:
            out.append(Delta(kind="text", text=delta["text"]))
        elif delta.get("type") == "thinking_delta" and delta["thinking"]:
            out.append(Delta(kind="thinking", text=delta["thinking"]))
    return out


def server_blocks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server-side blocks as the API sent them: the start block plus its streamed JSON input."""
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, str] = {}
    for event in events:
        if event["type"] == "content_block_start" and event["content_block"]["type"] not in (
            "text",
            "thinking",
            "tool_use",
        ):
            blocks[event["index"]] = copy.deepcopy(event["content_block"])
        elif event["type"] == "content_block_delta" and event["index"] in blocks:
            inputs[event["index"]] = inputs.get(event["index"], "") + event["delta"]["partial_json"]
    for index, raw in inputs.items():
        if raw:
            blocks[index]["input"] = json.loads(raw)
    return [blocks[i] for i in sorted(blocks)]


def request_from_recording(body: dict[str, Any]) -> Request:
    """The keen request equivalent to a recorded one's first user turn and client tools."""
    first = body["messages"][0]
    tools = [
        ToolSpec(name=t["name"], description=t["description"], input_schema=t["input_schema"])
        for t in body.get("tools", [])
        if "input_schema" in t
    ]
    return Request(
        system=body.get("system", "").strip() or "You are a helpful assistant.",
        tools=tools,
        messages=[Message(role="user", parts=[TextPart(text=b["text"]) for b in first["content"]])],
        max_tokens=body["max_tokens"],
    )


def hand_cost(usage: dict[str, Any], searches: int = 0) -> Decimal:
    million = Decimal(1_000_000)
    return (
        usage["input_tokens"] * SONNET_MTOK["input"]
        + usage["output_tokens"] * SONNET_MTOK["output"]
        + usage.get("cache_read_input_tokens", 0) * SONNET_MTOK["cache_read"]
        + usage.get("cache_creation_input_tokens", 0) * SONNET_MTOK["cache_write"]
    ) / million + searches * WEB_SEARCH_EACH


def final_usage(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The usage the stream ends with: message_start's, overwritten by message_delta's counts."""
    usage = dict(next(e for e in events if e["type"] == "message_start")["message"]["usage"])
    usage.update(next(e for e in events if e["type"] == "message_delta")["usage"])
    return usage


def strip_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [strip_cache_control(v) for v in value]
    return value


async def complete(model: AnthropicModel, request: Request) -> tuple[Turn, list[Delta]]:
    deltas: list[Delta] = []
    turn = await model.complete(request, deltas.append)
    return turn, deltas


@pytest.fixture
async def make_model(provider_server: FakeProviderServer) -> AsyncIterator[Callable[..., AnthropicModel]]:
    models: list[AnthropicModel] = []

    def make(name: str, **kwargs: Any) -> AnthropicModel:
        model = AnthropicModel(name, api_key="sk-test", base_url=provider_server.url, **kwargs)
        models.append(model)
        return model

    yield make
    for model in models:
        await model.aclose()


async def test_thinking_stream_gives_signed_thinking_then_text(provider_server, make_model):
    (interaction,) = load("test_anthropic_model_thinking_part_stream.yaml")
    events = recorded_events(interaction)
    provider_server.queue(recorded_reply(interaction))
    model = make_model("claude-sonnet-4-0")

    turn, deltas = await complete(model, request_from_recording(interaction["request"]["parsed_body"]))

    assert [type(p) for p in turn.parts] == [ThinkingPart, TextPart]
    signature = next(
        e["delta"]["signature"] for e in events if e.get("delta", {}).get("type") == "signature_delta"
    )
    assert turn.parts[0].signature == signature
    assert turn.thinking.startswith("This is a straightforward question about pedestrian safety.")
    assert turn.text.startswith("Here are the basic steps for safely crossing the street:")
    assert turn.stop_reason == "end_turn"
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (43, 282)
    assert (turn.usage.cache_read_tokens, turn.usage.cache_write_tokens) == (0, 0)
    assert turn.priced and turn.cost_usd == hand_cost(final_usage(events)) > 0
    assert turn.model == "anthropic:claude-sonnet-4-0" and turn.duration_ms >= 0
    # Every thinking and text fragment reached the live callback, in stream order.
    assert deltas == expected_deltas(events)
    assert [d.kind for d in deltas].index("text") == sum(d.kind == "thinking" for d in deltas)
    assert "".join(d.text for d in deltas if d.kind == "text") == turn.text


async def test_tool_call_with_thinking_round_trips_the_signed_thinking(provider_server, make_model):
    first, second = load("test_anthropic_tool_with_thinking.yaml")
    provider_server.queue(recorded_reply(first), recorded_reply(second))
    model = make_model("claude-sonnet-4-0")
    request = request_from_recording(first["request"]["parsed_body"])

    turn, deltas = await complete(model, request)

    recorded = first["response"]["parsed_body"]
    assert [p.type for p in turn.parts] == ["thinking", "text", "tool_use"]
    assert turn.parts[0] == ThinkingPart(
        thinking=recorded["content"][0]["thinking"], signature=recorded["content"][0]["signature"]
    )
    assert turn.tool_calls == [
        ToolUsePart(id="toolu_01YGzqpRE16Vricda3Aqcejo", name="get_user_country", input={})
    ]
    assert turn.stop_reason == "tool_use"
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (398, 155)
    assert (
        turn.cost_usd
        == hand_cost(recorded["usage"])
        == pricing.cost_of("claude-sonnet-4-0", "anthropic", turn.usage)
    )
    assert deltas[0].kind == "thinking" and deltas[-1].kind == "text"

    # Claude 4 with manual thinking: a budget below max_tokens and the interleaved-thinking beta.
    sent = provider_server.requests[0]
    assert sent.path.startswith("/v1/messages")
    assert sent.body["thinking"]["type"] == "enabled"
    assert 1024 <= sent.body["thinking"]["budget_tokens"] < sent.body["max_tokens"] == 4096
    assert "interleaved-thinking-2025-05-14" in sent.headers["anthropic-beta"].split(",")
    assert [t["name"] for t in sent.body["tools"]] == ["get_user_country", "web_search"]

    result = ToolResultPart(tool_use_id=turn.tool_calls[0].id, content="Mexico")
    follow_up = request.model_copy(
        update={"messages": [*request.messages, turn.as_message(), Message(role="user", parts=[result])]}
    )
    second_turn, _ = await complete(model, follow_up)

    sent_again = provider_server.requests[1].body
    # The conversation sent back is exactly what the live API received in the recording:
    # the thinking block and its signature unchanged, then the text, tool use and tool result.
    assert strip_cache_control(sent_again["messages"]) == second["request"]["parsed_body"]["messages"]
    assert sent_again["messages"][1]["content"][0]["signature"] == recorded["content"][0]["signature"]
    assert sent_again["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert second_turn.text.startswith("Based on the information that you're from Mexico")
    assert second_turn.stop_reason == "end_turn"
    assert (second_turn.usage.input_tokens, second_turn.usage.output_tokens) == (566, 126)


async def test_tool_input_built_from_json_deltas_and_server_blocks_kept_verbatim(provider_server, make_model):
    first, second = load("test_anthropic_native_tool_search_streaming.yaml")
    events = recorded_events(first)
    provider_server.queue(recorded_reply(first), recorded_reply(second))
    model = make_model("claude-sonnet-4-6")
    request = request_from_recording(first["request"]["parsed_body"])

    turn, deltas = await complete(model, request)

    assert [p.type for p in turn.parts] == ["text", "provider", "provider", "text", "tool_use"]
    assert turn.tool_calls == [
        ToolUsePart(
            id="toolu_01EFn5wTNBYA8Reni8rbmnHT",
            name="get_exchange_rate",
            input={"from_currency": "USD", "to_currency": "EUR"},
        )
    ]
    provider_parts = [p for p in turn.parts if isinstance(p, ProviderPart)]
    assert all(p.provider == "anthropic" for p in provider_parts)
    assert [p.block for p in provider_parts] == server_blocks(events)
    assert provider_parts[0].block["input"] == {"query": "USD EUR exchange rate currency conversion"}
    assert turn.stop_reason == "tool_use"
    # message_delta's cumulative counts replace message_start's.
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (1591, 175)
    assert turn.usage.web_search_requests == 0
    assert turn.cost_usd == hand_cost(final_usage(events)) > 0
    assert "".join(d.text for d in deltas) == turn.text
    assert provider_server.requests[0].body["thinking"]["type"] == "adaptive"

    result = ToolResultPart(tool_use_id=turn.tool_calls[0].id, content="1 USD = 0.92 EUR")
    follow_up = request.model_copy(
        update={"messages": [*request.messages, turn.as_message(), Message(role="user", parts=[result])]}
    )
    second_turn, _ = await complete(model, follow_up)

    recorded_messages = second["request"]["parsed_body"]["messages"]
    sent_messages = strip_cache_control(provider_server.requests[1].body["messages"])
    assert sent_messages[1] == recorded_messages[1]  # server blocks sent back exactly as received
    assert sent_messages[2]["content"][0]["tool_use_id"] == "toolu_01EFn5wTNBYA8Reni8rbmnHT"
    assert second_turn.text.startswith("The current exchange rate is **1 USD = 0.92 EUR**.")


async def test_web_search_results_are_provider_parts_and_searches_are_priced(provider_server, make_model):
    (interaction,) = load("test_anthropic_web_search_tool_stream.yaml")
    events = recorded_events(interaction)
    provider_server.queue(recorded_reply(interaction))
    model = make_model("claude-sonnet-4-0")
    request = request_from_recording(interaction["request"]["parsed_body"])

    turn, deltas = await complete(model, request)

    provider_parts = [p for p in turn.parts if isinstance(p, ProviderPart)]
    assert [p.block["type"] for p in provider_parts] == [
        "server_tool_use",
        "web_search_tool_result",
        "server_tool_use",
        "web_search_tool_result",
    ]
    assert [p.block for p in provider_parts] == server_blocks(events)
    assert provider_parts[0].block["input"] == {"query": "top world news today"}
    assert turn.text == "".join(d.text for d in expected_deltas(events))
    assert "Air Canada" in turn.text and turn.stop_reason == "end_turn"
    assert turn.usage.web_search_requests == 2
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (31772, 644)
    assert turn.cost_usd == hand_cost(final_usage(events), searches=2)
    assert (
        turn.cost_usd
        - pricing.cost_of(
            "claude-sonnet-4-0", "anthropic", turn.usage.model_copy(update={"web_search_requests": 0})
        )
        == 2 * WEB_SEARCH_EACH
    )
    assert deltas == expected_deltas(events)

    # The search blocks go back to Claude unchanged on the next call.
    provider_server.queue(recorded_reply(load("test_anthropic_model_thinking_part_stream.yaml")[0]))
    follow_up = request.model_copy(
        update={
            "messages": [
                *request.messages,
                turn.as_message(),
                Message(role="user", parts=[TextPart(text="And the weather?")]),
            ]
        }
    )
    await model.complete(follow_up)
    sent_assistant = provider_server.requests[1].body["messages"][1]["content"]
    assert [b for b in sent_assistant if b["type"] not in ("text",)] == server_blocks(events)


async def test_cache_tokens_are_mapped_and_priced_by_class(provider_server, make_model):
    first, _ = load("test_anthropic_tool_with_thinking.yaml")
    message = copy.deepcopy(first["response"]["parsed_body"])
    # The recorded call had no cache activity; the same reply with cache counts shows their mapping.
    message["usage"].update(
        input_tokens=12, cache_read_input_tokens=30_000, cache_creation_input_tokens=2_000
    )
    provider_server.queue(sse_reply(sse_events(anthropic_message_events(message))))
    model = make_model("claude-sonnet-4-0")

    turn = await model.complete(request_from_recording(first["request"]["parsed_body"]))

    assert turn.usage.input_tokens == 12
    assert turn.usage.cache_read_tokens == 30_000
    assert turn.usage.cache_write_tokens == 2_000
    assert turn.cost_usd == hand_cost(message["usage"])
    assert turn.cost_usd == Decimal("0.018861")  # 12×3 + 155×15 + 30000×0.30 + 2000×3.75, per MTok


async def test_request_has_cache_breakpoints_and_web_search_tool(provider_server, make_model):
    (interaction,) = load("test_anthropic_model_thinking_part_stream.yaml")
    provider_server.queue(recorded_reply(interaction), recorded_reply(interaction))
    tool = ToolSpec(name="read_file", description="Read a file", input_schema={"type": "object"})
    history = [
        Message(role="user", parts=[TextPart(text="first")]),
        Message(role="assistant", parts=[TextPart(text="ok")]),
        Message(role="user", parts=[TextPart(text="second")]),
    ]
    request = Request(system="Be brief.", tools=[tool], messages=history, max_tokens=8000)

    await make_model("claude-sonnet-5-5").complete(request)
    await make_model("claude-sonnet-5-5", web_search=False).complete(request)

    with_search, without_search = (r.body for r in provider_server.requests)
    assert with_search["system"] == [
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
    ]
    assert with_search["tools"] == [
        {"name": "read_file", "description": "Read a file", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search"},
    ]
    assert [t["name"] for t in without_search["tools"]] == ["read_file"]
    assert with_search["messages"][-1]["content"] == [
        {"type": "text", "text": "second", "cache_control": {"type": "ephemeral"}}
    ]
    assert "cache_control" not in json.dumps(with_search["messages"][:-1])  # one breakpoint on the turns
    assert with_search["thinking"]["type"] == "adaptive"  # Claude 5: adaptive thinking, no beta header
    assert with_search["max_tokens"] == 8000
    assert "anthropic-beta" not in provider_server.requests[0].headers


async def test_conversation_is_merged_and_foreign_parts_are_dropped(provider_server, make_model):
    (interaction,) = load("test_anthropic_model_thinking_part_stream.yaml")
    provider_server.queue(recorded_reply(interaction))
    tool_use = ToolUsePart(id="toolu_1", name="read_file", input={"path": "a.py"})
    messages = [
        Message(role="user", parts=[TextPart(text="first")]),
        Message(role="user", parts=[TextPart(text="second")]),
        Message(
            role="assistant",
            parts=[
                RedactedThinkingPart(data="EmwKAhgBEgy3va"),
                ThinkingPart(thinking="unsigned, from another model"),
                TextPart(text=""),
                TextPart(text="Reading."),
                tool_use,
                ProviderPart(provider="openai", block={"type": "reasoning"}),
            ],
        ),
        Message(role="user", parts=[TextPart(text="note")]),
        Message(role="user", parts=[ToolResultPart(tool_use_id="toolu_1", content="boom", is_error=True)]),
    ]

    await make_model("claude-sonnet-5-5").complete(Request(system="s", messages=messages))

    assert provider_server.requests[0].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True},
                {"type": "text", "text": "note", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("model", "thinking", "window", "betas"),
    [
        ("claude-sonnet-5-5", "adaptive", 1_000_000, set()),
        ("claude-opus-5", "adaptive", 1_000_000, set()),
        ("claude-haiku-5-5", "adaptive", 200_000, set()),
        ("claude-opus-4-7", "adaptive", 1_000_000, {"context-1m-2025-08-07"}),
        ("claude-sonnet-4-6", "adaptive", 1_000_000, {"context-1m-2025-08-07"}),
        (
            "claude-sonnet-4-5-20250929",
            "enabled",
            1_000_000,
            {"context-1m-2025-08-07", "interleaved-thinking-2025-05-14"},
        ),
        ("claude-opus-4-20250514", "enabled", 200_000, {"interleaved-thinking-2025-05-14"}),
        ("claude-haiku-4-5", "enabled", 200_000, {"interleaved-thinking-2025-05-14"}),
    ],
)
def test_capabilities_by_model(model, thinking, window, betas):
    claude = AnthropicModel(model, api_key="sk-test", base_url="http://127.0.0.1:9")
    params = claude.request_params(
        request_from_recording({"messages": [{"content": [{"text": "hi"}]}], "max_tokens": 4096})
    )

    assert params["thinking"]["type"] == thinking
    assert claude.context_window == window and claude.max_output_tokens == 32_000
    header = params.get("extra_headers", {}).get("anthropic-beta", "")
    assert set(filter(None, header.split(","))) == betas
    assert (claude.name, claude.provider, claude.scripted) == (f"anthropic:{model}", "anthropic", False)
    assert claude.for_agent("summon-A") is claude and claude.state() is None


def test_manual_thinking_is_left_out_when_the_output_allowance_is_too_small():
    claude = AnthropicModel("claude-sonnet-4-0", api_key="sk-test")
    request = Request(
        system="s", messages=[Message(role="user", parts=[TextPart(text="hi")])], max_tokens=1500
    )

    assert "thinking" not in claude.request_params(request)
    assert claude.request_params(request.model_copy(update={"max_tokens": 3000}))["thinking"] == {
        "type": "enabled",
        "budget_tokens": 1500,
    }


def test_worst_case_cost_is_all_input_uncached_plus_the_whole_output_allowance():
    claude = AnthropicModel("claude-sonnet-4-0", api_key="sk-test")
    request = Request(system="x" * 3000, messages=[Message(role="user", parts=[TextPart(text="hi")])])
    tokens = estimate_tokens(request)

    assert claude.worst_case_cost(request) == (tokens * 3 + 32_000 * 15) / Decimal(1_000_000)
    limited = request.model_copy(update={"max_tokens": 1_000})
    assert claude.worst_case_cost(limited) == (tokens * 3 + 1_000 * 15) / Decimal(1_000_000)

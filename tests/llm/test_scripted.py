"""The scripted model of SPEC section 12."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from keen.errors import ConfigError, ModelCallError
from keen.llm.base import Delta, Message, Request, TextPart
from keen.llm.scripted import ScriptedModel

REQUEST = Request(system="s", messages=[Message(role="user", parts=[TextPart(text="hi")])])


def script(tmp_path: Path, data: object, name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else str(data))
    return path


async def test_each_agent_plays_its_own_list_in_order(tmp_path: Path) -> None:
    path = script(
        tmp_path, {"agents": {"main": [{"text": "m1"}, {"text": "m2"}], "summon-A": [{"text": "a1"}]}}
    )
    main = ScriptedModel(path)
    child = main.for_agent("summon-A")
    assert (await main.complete(REQUEST)).text == "m1"
    assert (await child.complete(REQUEST)).text == "a1"
    assert (await main.complete(REQUEST)).text == "m2"


async def test_a_bare_list_is_the_main_agent_and_yaml_works(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "- text: from yaml\n  tool_calls:\n    - name: git\n      input: {action: status}\n",
        "s.yaml",
    )
    turn = await ScriptedModel(path).complete(REQUEST)
    assert turn.text == "from yaml"
    assert turn.tool_calls[0].name == "git" and turn.tool_calls[0].input == {"action": "status"}
    assert turn.stop_reason == "tool_use"


async def test_turns_are_labelled_scripted_priced_and_streamed(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        [{"text": "hello there", "thinking": "hm", "usage": {"input_tokens": 1_000_000, "output_tokens": 0}}],
    )
    deltas: list[Delta] = []
    turn = await ScriptedModel(path).complete(REQUEST, deltas.append)
    assert turn.model.startswith("scripted:")
    assert turn.cost_usd == Decimal(2)  # claude-sonnet-5-5: $2 per million input tokens
    assert "".join(d.text for d in deltas if d.kind == "text").strip() == "hello there"
    assert next(d.kind for d in deltas) == "thinking"


async def test_default_usage_and_cache_tokens(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        {
            "agents": {
                "main": [
                    {"text": "a"},
                    {
                        "text": "b",
                        "usage": {
                            "input_tokens": 10,
                            "output_tokens": 5,
                            "cache_read_input_tokens": 7,
                            "cache_creation_input_tokens": 3,
                        },
                    },
                ]
            },
            "default_usage": {"input_tokens": 42, "output_tokens": 4},
        },
    )
    model = ScriptedModel(path)
    first = await model.complete(REQUEST)
    second = await model.complete(REQUEST)
    assert (first.usage.input_tokens, first.usage.output_tokens) == (42, 4)
    assert (second.usage.cache_read_tokens, second.usage.cache_write_tokens) == (7, 3)


@pytest.mark.parametrize(
    ("kind", "status"),
    [("rate_limit", 429), ("overloaded", 529), ("server_error", 500), ("context_length", 400)],
)
async def test_error_turns_fail_like_the_provider_and_are_consumed(
    tmp_path: Path, kind: str, status: int
) -> None:
    model = ScriptedModel(script(tmp_path, [{"error": kind}, {"text": "after"}]))
    with pytest.raises(ModelCallError) as raised:
        await model.complete(REQUEST)
    assert raised.value.kind == kind and raised.value.status == status
    assert raised.value.retryable == (kind != "context_length")
    assert (await model.complete(REQUEST)).text == "after"


async def test_exhausted_script_is_a_clear_error(tmp_path: Path) -> None:
    model = ScriptedModel(script(tmp_path, [{"text": "only"}]))
    await model.complete(REQUEST)
    with pytest.raises(ModelCallError, match="script exhausted: agent 'main' has no turn 2"):
        await model.complete(REQUEST)


async def test_state_and_restore_continue_with_the_next_unused_turn(tmp_path: Path) -> None:
    path = script(tmp_path, [{"text": "1"}, {"text": "2"}, {"text": "3"}])
    model = ScriptedModel(path)
    await model.complete(REQUEST)
    state = model.state()
    resumed = ScriptedModel(path)
    resumed.restore(state)
    assert (await resumed.complete(REQUEST)).text == "2"


async def test_worst_case_is_the_next_real_turns_cost(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        [{"error": "overloaded"}, {"text": "x", "usage": {"input_tokens": 500_000, "output_tokens": 0}}],
    )
    assert ScriptedModel(path).worst_case_cost(REQUEST) == Decimal(1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid json"),
        (json.dumps({"agents": {"main": [{"txt": "typo"}]}}), "is invalid"),
        (json.dumps({"agents": {"main": [{"error": "meltdown"}]}}), "is invalid"),
    ],
)
def test_bad_scripts_are_config_errors_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as raised:
        ScriptedModel(path)
    assert "bad.json" in raised.value.message

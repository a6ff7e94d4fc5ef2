"""A provider that breaks its streaming protocol ends the session `failed` with a message naming it.

A real `keen breathe` process talks through the real SDK to the local fault-injecting server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.provider_server import (
    FakeProviderServer,
    anthropic_message_events,
    openai_sse,
    sse_events,
    sse_reply,
)

from helpers import run_keen

HELLO = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-5-5",
    "content": [{"type": "text", "text": "Hello."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 20, "output_tokens": 9},
}


def _without_delta_usage() -> list[dict[str, Any]]:
    return [
        {**e, "usage": None} if e["type"] == "message_delta" else e for e in anthropic_message_events(HELLO)
    ]


CASES = {
    "anthropic events out of order": (
        "anthropic:claude-sonnet-5-5",
        sse_events([*anthropic_message_events(HELLO)[1:], {"type": "message_stop"}]),
        "anthropic: protocol violation: content_block_start event before message_start",
    ),
    "anthropic reply without usage": (
        "anthropic:claude-sonnet-5-5",
        sse_events(_without_delta_usage()),
        "anthropic: protocol violation: message_delta without usage",
    ),
    "openai chunk with mistyped content": (
        "openai:gpt-4o",
        openai_sse(
            [
                {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": 7}}],
                }
            ]
        ),
        "openai: protocol violation: a delta's content is int, not str",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_protocol_violation_fails_the_session_with_its_message(tmp_path: Path, case: str) -> None:
    model, stream, message = CASES[case]
    server = FakeProviderServer().start()
    try:
        server.queue(sse_reply(stream))
        env = {
            "ANTHROPIC_API_KEY": "sk-test",
            "ANTHROPIC_BASE_URL": server.url,
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": f"{server.url}/v1",
        }
        args = ("breathe", "say hello to the world", "--model", model, "--dir", "w", "--no-web-search")
        result = run_keen(*args, "--json", cwd=tmp_path, env=env)
        sessions = run_keen("sessions", "list", "--json", cwd=tmp_path)
    finally:
        server.close()

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "failed" and report["error"] == message
    assert "Traceback" not in result.stderr
    assert len(server.requests) == 1  # not retried
    [session] = json.loads(sessions.stdout)
    assert session["status"] == "failed" and session["error"] == message

"""A reply is recorded with each tool call once, and read back (by resume) part for part."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from keen.agent.history import History
from keen.events import types as ev
from keen.events.types import Event
from keen.llm.base import (
    Part,
    ProviderPart,
    TextPart,
    ThinkingPart,
    ToolUsePart,
    parts_from_record,
    reply_record,
)

BIG_FILE = "print('hello')\n" * 2_000
PARTS: list[Part] = [
    ThinkingPart(thinking="Two files to write.", signature="sig-1"),
    TextPart(text="Writing them now."),
    ToolUsePart(id="toolu_1", name="write_files", input={"files": [{"path": "a.py", "content": BIG_FILE}]}),
    ProviderPart(
        provider="anthropic", block={"type": "server_tool_use", "id": "srv_1", "name": "web_search"}
    ),
    ToolUsePart(id="toolu_2", name="write_files", input={"files": [{"path": "b.py", "content": "x = 1\n"}]}),
    ToolUsePart(id="toolu_2", name="run_command", input={"command": "pytest"}),  # a repeated id
]
OLDER_PARTS = [p.model_dump() for p in PARTS]  # how older events stored the parts, calls whole


def _responded(data: dict[str, Any]) -> Event:
    return Event(
        seq=2,
        session_id="s",
        root_session_id="s",
        parent_session_id=None,
        type=ev.MODEL_RESPONDED,
        ts=datetime.now(UTC),
        data={"iteration": 1, "stop_reason": "tool_use", **data},
    )


def test_each_tool_input_is_stored_once():
    stored = json.dumps(reply_record(PARTS))

    assert stored.count("print('hello')") == BIG_FILE.count("print('hello')")
    assert stored.count("pytest") == 1


def test_the_record_keeps_the_tool_calls_in_full_and_the_parts_in_order():
    record = reply_record(PARTS)

    assert record["tool_calls"] == [p.model_dump(mode="json") for p in PARTS if isinstance(p, ToolUsePart)]
    assert [p["type"] for p in record["parts"]] == [p.type for p in PARTS]
    assert parts_from_record(record) == PARTS


def test_older_records_with_the_tool_calls_inside_the_parts_read_the_same():
    older = {"tool_calls": reply_record(PARTS)["tool_calls"], "parts": OLDER_PARTS}

    assert parts_from_record(older) == PARTS


def test_resume_rebuilds_the_same_conversation_from_either_record():
    rebuilt = []
    for record in (reply_record(PARTS), {"tool_calls": [], "parts": OLDER_PARTS}):
        history = History()
        history.apply(_responded(record))
        rebuilt.append(history)

    for history in rebuilt:
        assert history.messages[-1].parts == PARTS
        assert [c.id for c in history.last_calls] == ["toolu_1", "toolu_2", "toolu_2"]

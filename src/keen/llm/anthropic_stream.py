"""Reading a Messages API event stream into the reply, checking that it keeps the protocol.

The SDK's raw events are read (not its stream helper, which trips on assertions and attribute
errors when the order is wrong), so that each break of the protocol — an event before
`message_start` or after `message_stop`, a delta for a block that is not open, a block index out
of sequence, tool input that is not a JSON object, a reply without `message_delta` or without
usage — fails the call with a
`ModelCallError` that says what was wrong. Event types keen does not know are skipped, as the
API's versioning policy asks of clients.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NoReturn

from keen.llm.base import Delta
from keen.llm.provider import protocol_violation

PROVIDER = "anthropic"
# Blocks that receive `input_json_delta`s: client and server tool calls.
_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
# Which delta fills which block type, and the delta's field with its text.
_DELTAS = {
    "text_delta": ("text", "text"),
    "thinking_delta": ("thinking", "thinking"),
    "signature_delta": ("thinking", "signature"),
    "citations_delta": ("text", None),  # citations are not kept
    "input_json_delta": (None, "partial_json"),
}
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def violation(what: str) -> NoReturn:
    protocol_violation(PROVIDER, what)


@dataclass
class StreamReader:
    """The reply as its events arrive: content blocks (as the API's JSON), usage, stop reason."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    web_search_requests: int = 0
    stop_reason: str | None = None
    started: bool = False
    finished: bool = False
    _delta_seen: bool = False
    _open: set[int] = field(default_factory=set)
    _json: dict[int, list[str]] = field(default_factory=dict)

    def add(self, event: Any) -> Delta | None:
        """Take in one event; return the live fragment it carries, if any."""
        kind = getattr(event, "type", None)
        if kind == "ping":
            return None
        if self.finished:
            violation(f"{kind} event after message_stop")
        if not self.started and kind != "message_start":
            violation(f"{kind} event before message_start")
        if kind == "message_start":
            self._start(event)
        elif kind == "content_block_start":
            self._block_start(event)
        elif kind == "content_block_delta":
            return self._delta(event)
        elif kind == "content_block_stop":
            self._block_stop(event)
        elif kind == "message_delta":
            self._message_delta(event)
        elif kind == "message_stop":
            if self._open:
                violation(f"message_stop while content block {min(self._open)} is still open")
            if not self._delta_seen:
                violation("message_stop before message_delta (the stop reason and final usage)")
            self.finished = True
        return None

    def final_usage(self) -> dict[str, int]:
        """Token counts by the API's names; input and output are required."""
        if "input_tokens" not in self.usage or "output_tokens" not in self.usage:
            violation("the reply carried no token usage (input_tokens and output_tokens)")
        return self.usage

    # -- events ------------------------------------------------------------------------------

    def _start(self, event: Any) -> None:
        if self.started:
            violation("a second message_start")
        self.started = True
        message = getattr(event, "message", None)
        if message is None:
            violation("message_start without a message")
        self._take_usage(getattr(message, "usage", None))
        for block in getattr(message, "content", None) or []:
            self.blocks.append(_block_json(block, len(self.blocks)))

    def _block_start(self, event: Any) -> None:
        index = _index(event)
        if index != len(self.blocks):
            violation(f"content_block_start for block {index}, expected block {len(self.blocks)}")
        self.blocks.append(_block_json(getattr(event, "content_block", None), index))
        self._open.add(index)

    def _delta(self, event: Any) -> Delta | None:
        index = self._open_block(event, "content_block_delta")
        block = self.blocks[index]
        delta = getattr(event, "delta", None)
        delta_type = getattr(delta, "type", None)
        if delta_type not in _DELTAS:
            return None  # a delta type newer than keen
        fills, name = _DELTAS[delta_type]
        allowed = fills == block["type"] if fills else block["type"] in _INPUT_BLOCKS
        if not allowed:
            violation(f"{delta_type} for block {index}, a {block['type']} block")
        if name is None:
            return None
        value = getattr(delta, name, None)
        if not isinstance(value, str):
            violation(f"{delta_type} for block {index} without its {name} text")
        if delta_type == "input_json_delta":
            self._json.setdefault(index, []).append(value)
        elif delta_type == "signature_delta":
            block["signature"] = value
        else:
            block[name] = block.get(name, "") + value
            if value:
                return Delta(kind="text" if name == "text" else "thinking", text=value)
        return None

    def _block_stop(self, event: Any) -> None:
        index = self._open_block(event, "content_block_stop")
        self._open.discard(index)
        pieces = self._json.pop(index, None)
        if pieces and "".join(pieces):
            block = self.blocks[index]
            try:
                block["input"] = json.loads("".join(pieces))
            except ValueError:
                violation(f"the input of {block['type']} block {index} is not valid JSON")
        block = self.blocks[index]
        if block["type"] in _INPUT_BLOCKS and not isinstance(block.get("input"), dict):
            violation(f"the input of {block['type']} block {index} is not a JSON object")

    def _message_delta(self, event: Any) -> None:
        usage = getattr(event, "usage", None)
        if usage is None:
            violation("message_delta without usage")
        self._delta_seen = True
        self._take_usage(usage)
        stop = getattr(getattr(event, "delta", None), "stop_reason", None)
        if stop is not None and not isinstance(stop, str):
            violation("message_delta with a stop_reason that is not a string")
        self.stop_reason = stop or self.stop_reason

    # -- helpers -----------------------------------------------------------------------------

    def _open_block(self, event: Any, kind: str) -> int:
        index = _index(event)
        if index not in self._open:
            state = "was never started" if index >= len(self.blocks) else "is already stopped"
            violation(f"{kind} for content block {index}, which {state}")
        return index

    def _take_usage(self, usage: Any) -> None:
        """Counts overwrite earlier ones (message_delta's are cumulative); absent ones are kept."""
        if usage is None:
            return
        for name in _USAGE_FIELDS:
            value = getattr(usage, name, None)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                violation(f"usage {name} is {value!r}, not a count")
            self.usage[name] = value
        searches = getattr(getattr(usage, "server_tool_use", None), "web_search_requests", None)
        if isinstance(searches, int) and searches >= 0:
            self.web_search_requests = searches


def _index(event: Any) -> int:
    index = getattr(event, "index", None)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        violation(f"{getattr(event, 'type', None)} without a valid block index ({index!r})")
    return index


def _block_json(block: Any, index: int) -> dict[str, Any]:
    """A content block as the API's JSON (the SDK parses it into a typed object)."""
    data = block.to_dict(mode="json") if hasattr(block, "to_dict") else block
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        violation(f"content block {index} has no type")
    return data

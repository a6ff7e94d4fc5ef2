"""Context condensing (SPEC 3.4): pure functions over a conversation.

First old tool results are shortened (the newest messages stay whole); if the request is still
too large, the older history is replaced by one summary built from what the session did. Both
are deterministic so that a resumed session rebuilds exactly the same conversation.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from keen.agent.prompts.render import render
from keen.llm.base import Message, TextPart, ToolResultPart, ToolUsePart
from keen.text import cut_middle

KEEP_WHOLE_MESSAGES = 6
SHORTENED_RESULT_CHARS = 1_500
SUMMARY_KEEP_MESSAGES = 4
# Condense when the estimated request passes this share of the usable window.
CONDENSE_AT = 0.8


def usable_window(context_window: int, max_output_tokens: int) -> int:
    return context_window - min(max_output_tokens, context_window // 4)


async def condense(
    messages: list[Message],
    *,
    estimate: Callable[[list[Message] | None], int],
    limit: float,
    emit: Callable[[str, dict[str, Any]], Awaitable[Any]],
    force: bool = False,
) -> None:
    """Condense `messages` if the request (sized by `estimate`, None meaning as it is) is over
    `limit`: shorten old tool results, then fold the older turns into a summary. Each step is
    a `context.condensed` event (applying it changes the history) and only when it shrinks the
    request."""
    before = estimate(None)
    if before <= limit and not force:
        return
    if long_old_results(messages, KEEP_WHOLE_MESSAGES, SHORTENED_RESULT_CHARS):
        shortened = shorten_tool_results(messages, KEEP_WHOLE_MESSAGES, SHORTENED_RESULT_CHARS)
        after = estimate(shortened)
        await emit(
            "context.condensed",
            {
                "method": "shorten",
                "keep_last": KEEP_WHOLE_MESSAGES,
                "max_chars": SHORTENED_RESULT_CHARS,
                "tokens_before": before,
                "tokens_after": after,
            },
        )
        if after <= limit and not force:
            return
        before, messages = after, shortened
    keep_from = summary_split(messages, SUMMARY_KEEP_MESSAGES)
    if keep_from <= 1:
        return  # nothing old enough to fold away
    summary = build_summary(messages[:keep_from])
    after = estimate(replace_with_summary(messages, keep_from, summary))
    if after >= before:
        return  # what would be folded away is smaller than its summary
    await emit(
        "context.condensed",
        {
            "method": "summary",
            "keep_from": keep_from,
            "summary": summary,
            "tokens_before": before,
            "tokens_after": after,
        },
    )


def shorten_tool_results(messages: list[Message], keep_last: int, max_chars: int) -> list[Message]:
    """Cut long tool results in the middle, except in the last `keep_last` messages."""
    cutoff = max(len(messages) - keep_last, 0)
    out: list[Message] = []
    for index, message in enumerate(messages):
        if index >= cutoff or message.role != "user":
            out.append(message)
            continue
        parts = [
            p.model_copy(update={"content": cut_middle(p.content, max_chars)})
            if isinstance(p, ToolResultPart) and len(p.content) > max_chars
            else p
            for p in message.parts
        ]
        out.append(Message(role="user", parts=parts))
    return out


def long_old_results(messages: list[Message], keep_last: int, max_chars: int) -> int:
    """How many tool results `shorten_tool_results` would cut."""
    cutoff = max(len(messages) - keep_last, 0)
    return sum(
        1
        for message in messages[:cutoff]
        for p in message.parts
        if isinstance(p, ToolResultPart) and len(p.content) > max_chars
    )


def summary_split(messages: list[Message], keep_last: int) -> int:
    """Index where the kept tail starts: an assistant message, so tool results stay paired."""
    start = max(len(messages) - keep_last, 1)
    while start < len(messages) and messages[start].role != "assistant":
        start += 1
    return start


def replace_with_summary(messages: list[Message], keep_from: int, summary: str) -> list[Message]:
    """The first user message (the vision) plus the summary, then the tail from `keep_from`."""
    first = messages[0]
    head = Message(role="user", parts=[*first.parts, TextPart(text=summary)])
    return [head, *messages[keep_from:]]


def build_summary(messages: list[Message]) -> str:
    """What the condensed part of the session did, from its tool calls and the agent's notes."""
    phases: list[str] = []
    files: list[str] = []
    commands: list[str] = []
    notes: list[str] = []
    results: dict[str, ToolResultPart] = {
        p.tool_use_id: p for m in messages for p in m.parts if isinstance(p, ToolResultPart)
    }
    for message in messages[1:]:
        if message.role != "assistant":
            continue
        text = message.text().strip()
        if text:
            notes.append(cut_middle(" ".join(text.split()), 300))
        for part in message.parts:
            if not isinstance(part, ToolUsePart):
                continue
            _collect(part, results.get(part.id), phases, files, commands)
    return render(
        "condensed_summary.j2",
        phases=phases,
        files=sorted(set(files)),
        commands=commands[-30:],
        notes=notes[-10:],
    )


def _collect(
    call: ToolUsePart,
    result: ToolResultPart | None,
    phases: list[str],
    files: list[str],
    commands: list[str],
) -> None:
    args = call.input
    if call.name == "report_phase" and isinstance(args.get("phase"), str):
        phases.append(args["phase"].upper())
    elif call.name == "write_files":
        listed = args.get("files")
        entries = listed if isinstance(listed, list) else [args]
        files.extend(str(f.get("path")) for f in entries if isinstance(f, dict) and f.get("path"))
    elif call.name in {"edit_file", "delete_files"}:
        paths = (args.get("paths") if call.name == "delete_files" else [args.get("path")]) or []
        files.extend(str(p) for p in paths or [] if p)
    elif call.name == "run_command" and isinstance(args.get("command"), str):
        commands.append(f"{args['command'][:200]} → {_exit_code(result)}")


def _exit_code(result: ToolResultPart | None) -> str:
    if result is None:
        return "?"
    try:
        body = json.loads(result.content)
    except ValueError:
        return "?"
    output = body.get("output") if isinstance(body, dict) else None
    if isinstance(output, dict) and "exit_code" in output:
        return str(output["exit_code"])
    return "ok" if isinstance(body, dict) and body.get("ok") else "error"

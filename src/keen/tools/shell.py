"""`run_command`; `scrubbed_env` and `redact`: the one place that keeps keen's secrets out of
commands and out of everything a tool returns (the event log and the model see only that)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keen.config import MIN_SOUGHT_SECRET, SECRET_ENV_VARS
from keen.text import cut_middle
from keen.tools.context import ToolContext
from keen.tools.registry import Tool, ToolError, tool

DEFAULT_TIMEOUT_SECONDS = 120
MAX_TIMEOUT_SECONDS = 600
STREAM_LIMIT = 15_000  # characters per stream: both fit in one tool result
REDACTED = "[secret redacted by keen]"


def scrubbed_env(
    secret_values: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A copy of the environment without keen's secrets, for anything the agent can run.

    Removed: every name in `SECRET_ENV_VARS`, every `KEEN_*` name (keen's own configuration),
    and every variable whose value is, or contains, one of `secret_values` — a key copied
    under another name must not slip through.
    """
    secrets = [s for s in secret_values if s]
    source = os.environ if environ is None else environ
    return {
        name: value
        for name, value in source.items()
        if name not in SECRET_ENV_VARS and not name.startswith("KEEN_") and not _holds_secret(value, secrets)
    }


def _holds_secret(value: str, secrets: list[str]) -> bool:
    # A long secret found inside a value leaks through it (a password in a connection URL).
    return any(value == s or (len(s) >= MIN_SOUGHT_SECRET and s in value) for s in secrets)


def redact(text: str, secret_values: Iterable[str]) -> str:
    """`text` with every one of keen's secret values replaced by a marker.

    Secrets shorter than `MIN_SOUGHT_SECRET` are left alone: they would match ordinary words.
    Longer secrets go first, so a URL is replaced whole before the password inside it.
    """
    return _redact_text(text, _sought(secret_values))


def redact_value(value: Any, secret_values: Iterable[str]) -> Any:
    """`value` (a tool's JSON-like output) with `redact` applied to every string in it."""
    secrets = _sought(secret_values)
    return _redact_tree(value, secrets) if secrets else value


def _sought(secret_values: Iterable[str]) -> list[str]:
    return sorted({s for s in secret_values if len(s) >= MIN_SOUGHT_SECRET}, key=len, reverse=True)


def _redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_tree(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return _redact_text(value, secrets)
    if isinstance(value, dict):
        return {_redact_tree(k, secrets): _redact_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(v, secrets) for v in value]
    return value


class RunCommandInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, description="A bash command line, run with `bash -c`.")
    timeout_seconds: int = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
        description="Seconds before the command and everything it started are killed.",
    )


@tool(
    "run_command",
    "Run a shell command with `bash -c` in the workspace root (tests, builds, installs, linters, "
    "scripts). There is no stdin and no terminal: use non-interactive flags (e.g. `-y`, "
    "`--no-pager`, `CI=1`). Returns exit_code, stdout, stderr, duration_ms and timed_out; long "
    f"output is cut in the middle. After timeout_seconds (default {DEFAULT_TIMEOUT_SECONDS}, max "
    f"{MAX_TIMEOUT_SECONDS}) the command and all processes it started are killed, so do not "
    "start servers or watchers that never exit unless bounded (e.g. `timeout 10 ...`). "
    "A non-zero exit code is reported, not an error. Commands run in a sandbox: the workspace is "
    "writable, the rest of the system read-only, /tmp and the home directory are private to the "
    "session, and nothing a command starts outlives it. keen's own secrets (API keys, database "
    "URL) are not in the environment. Prefer the file tools for reading and editing files.",
    RunCommandInput,
)
async def run_command(ctx: ToolContext, args: RunCommandInput) -> dict[str, Any]:
    sandbox = ctx.command_sandbox()
    result = await sandbox.run(
        ["bash", "-c", args.command],
        workspace=ctx.workspace.root,
        timeout=args.timeout_seconds,
        env=scrubbed_env(ctx.secret_values),
    )
    output: dict[str, Any] = {
        "exit_code": result.exit_code,
        "stdout": cut_middle(redact(result.stdout, ctx.secret_values), STREAM_LIMIT),
        "stderr": cut_middle(redact(result.stderr, ctx.secret_values), STREAM_LIMIT),
        "duration_ms": result.duration_ms,
        "timed_out": result.timed_out,
    }
    if notice := sandbox.take_notice():
        output["sandbox"] = notice
    if result.timed_out:
        raise ToolError(
            f"command timed out after {args.timeout_seconds}s; it and every process it started "
            "were killed (output so far is included)",
            output=output,
        )
    return output


TOOLS: list[Tool] = [run_command]

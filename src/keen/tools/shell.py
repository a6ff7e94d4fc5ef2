"""`run_command`, and `scrubbed_env`: the one place that keeps keen's secrets out of commands."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keen.config import SECRET_ENV_VARS
from keen.proc import run_process
from keen.text import cut_middle
from keen.tools.context import ToolContext
from keen.tools.registry import Tool, ToolError, tool

DEFAULT_TIMEOUT_SECONDS = 120
MAX_TIMEOUT_SECONDS = 600
STREAM_LIMIT = 15_000  # characters per stream: both fit in one tool result
# A secret this long is specific enough that finding it inside a value means the value leaks it
# (e.g. a password embedded in a connection URL); shorter ones are only matched exactly.
_MIN_EMBEDDED_SECRET = 8


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
    return any(value == s or (len(s) >= _MIN_EMBEDDED_SECRET and s in value) for s in secrets)


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
    "A non-zero exit code is reported, not an error. keen's own secrets (API keys, database URL) "
    "are not in the environment. Prefer the file tools for reading and editing files.",
    RunCommandInput,
)
async def run_command(ctx: ToolContext, args: RunCommandInput) -> dict[str, Any]:
    result = await run_process(
        ["bash", "-c", args.command],
        cwd=ctx.workspace.root,
        timeout=args.timeout_seconds,
        env=scrubbed_env(ctx.secret_values),
    )
    output = {
        "exit_code": result.exit_code,
        "stdout": cut_middle(result.stdout, STREAM_LIMIT),
        "stderr": cut_middle(result.stderr, STREAM_LIMIT),
        "duration_ms": result.duration_ms,
        "timed_out": result.timed_out,
    }
    if result.timed_out:
        raise ToolError(
            f"command timed out after {args.timeout_seconds}s; it and every process it started "
            "were killed (output so far is included)",
            output=output,
        )
    return output


TOOLS: list[Tool] = [run_command]

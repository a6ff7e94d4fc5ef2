"""`run_command`; `scrubbed_env` and `redact`: the one place that keeps keen's secrets out of
commands and out of everything a tool returns (the event log and the model see only that)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keen.secrets import redact, scrubbed_env
from keen.text import cut_middle
from keen.tools.context import ToolContext
from keen.tools.registry import Tool, ToolError, tool

DEFAULT_TIMEOUT_SECONDS = 120
MAX_TIMEOUT_SECONDS = 600
STREAM_LIMIT = 15_000  # characters per stream: both fit in one tool result


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

"""The `git` tool: real git in the workspace, arguments as a list, no way out of the workspace.

It runs in the session's sandbox like `run_command`: the repository's hooks and config are the
agent's own, so whatever they make git run stays contained.
"""

from __future__ import annotations

import shlex
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keen.gitrepo import GIT_TIMEOUT_SECONDS, GitRepo, git_env
from keen.secrets import redact, scrubbed_env
from keen.text import cut_middle
from keen.tools.context import ToolContext
from keen.tools.registry import Tool, ToolError, tool

GitAction = Literal[
    "status", "diff", "log", "add", "commit", "branch", "checkout", "merge", "show", "stash", "reset"
]

STDOUT_LIMIT = 25_000
STDERR_LIMIT = 8_000
DEFAULT_LOG = ["--oneline", "-n", "20"]
LOG_CAP = ["-n", "50"]  # put first, so an explicit -n/--max-count in args (last wins) overrides it

# Long options that point git at another repository, tree or config, run programs, or read and
# write files outside the workspace. Abbreviations count: git accepts unambiguous prefixes.
_REFUSED_LONG = (
    "--git-dir",
    "--work-tree",
    "--namespace",
    "--exec-path",
    "--config-env",
    "--exec",
    "--upload-pack",
    "--receive-pack",
    "--template",
    "--output",
    "--no-index",
    "--ext-diff",
    "--open-files-in-pager",
    "--file",
    "--pathspec-from-file",
)
_REFUSED_SHORT = ("-c", "-C")  # -c name=value injects config (core.sshCommand…); -C changes directory
_MIN_ABBREVIATION = 4  # "--" plus two letters


class GitInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: GitAction = Field(description="The git subcommand to run.")
    args: list[str] = Field(default_factory=list, description="Further arguments, one per item (no shell).")
    message: str | None = Field(default=None, description="Message for commit, merge or stash.")
    branch: str | None = Field(default=None, description="Branch for checkout, branch or merge.")
    create: bool = Field(default=False, description="With checkout: create `branch` first (checkout -b).")

    @field_validator("args")
    @classmethod
    def _no_nul(cls, value: list[str]) -> list[str]:
        if any("\x00" in a for a in value):
            raise ValueError("arguments may not contain NUL bytes")
        return value

    @field_validator("branch")
    @classmethod
    def _plain_branch(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value.startswith("-") or "\x00" in value):
            raise ValueError(f"{value!r} is not a branch name")
        return value


@tool(
    "git",
    "Run git in the workspace: status, diff, log, add, commit, branch, checkout, merge, show, "
    "stash or reset, with extra arguments in `args` (a list, one argument per item; no shell). "
    "Defaults: status is `--short --branch`; log without args is the last 20 commits one per "
    "line, with args at most 50 unless you pass -n; add without args stages everything (-A). "
    "commit needs `message`. checkout with `branch` and `create: true` makes a new branch "
    "(checkout -b). merge takes `branch` and never opens an editor. reset is git's default "
    "(mixed) unless you pass `--hard` in args yourself, which discards uncommitted changes. "
    "Options that leave the workspace or change git's configuration (-C, -c, --git-dir, "
    "--work-tree, --output, --no-index, …) are refused. A failing git command is an error "
    "with git's message. A child agent's tree name (e.g. summon-A) can be used as `branch` for "
    "merge and checkout.",
    GitInput,
)
async def git(ctx: ToolContext, args: GitInput) -> dict[str, Any]:
    repo = GitRepo(ctx.workspace.root)
    env = {**git_env(scrubbed_env(ctx.secret_values)), "GIT_EDITOR": "true"}  # never wait on an editor
    if args.branch is not None and args.action in ("merge", "checkout") and not args.create:
        args = args.model_copy(update={"branch": await _tree_branch(ctx, repo, args.branch, env)})
    argv = build_argv(args)
    sandbox = ctx.command_sandbox()
    result = await sandbox.run(
        ["git", *argv], workspace=ctx.workspace.root, timeout=GIT_TIMEOUT_SECONDS, env=env
    )
    output: dict[str, Any] = {
        "command": shlex.join(["git", *argv]),
        "exit_code": result.exit_code,
        "stdout": cut_middle(redact(result.stdout, ctx.secret_values), STDOUT_LIMIT),
        "stderr": cut_middle(redact(result.stderr, ctx.secret_values), STDERR_LIMIT),
    }
    if notice := sandbox.take_notice():
        output["sandbox"] = notice
    if result.timed_out:
        raise ToolError(f"git {args.action} timed out and was killed", output=output)
    if result.exit_code != 0:
        detail = (result.stderr.strip() or result.stdout.strip() or "no output")[-2000:]
        raise ToolError(f"git {args.action} failed (exit {result.exit_code}): {detail}", output=output)
    return output


async def _tree_branch(ctx: ToolContext, repo: GitRepo, branch: str, env: dict[str, str]) -> str:
    """A child's tree name (`summon-A`) stands for its git branch (`keen/<session>/summon-A`)."""
    tree = ctx.agent.tree
    if tree is None or (await repo.run("rev-parse", "--verify", "-q", branch, check=False, env=env)).ok:
        return branch
    candidate = tree.git_branch_for(branch)
    found = await repo.run("rev-parse", "--verify", "-q", candidate, check=False, env=env)
    return candidate if found.ok else branch


def build_argv(args: GitInput) -> list[str]:
    """The git argument list for a tool call; raises ToolError for a call that is refused."""
    _check_fields(args)
    refused = refused_option(args.args)
    if refused is not None:
        raise ToolError(
            f"git option {refused!r} is not allowed: it could reach outside the workspace or change "
            "git's configuration"
        )
    extra = list(args.args)
    action = args.action
    if action == "status":
        return ["status", *(extra or ["--short", "--branch"])]
    if action == "log":
        return ["log", *([*LOG_CAP, *extra] if extra else DEFAULT_LOG)]
    if action == "add":
        return ["add", *(extra or ["-A"])]
    if action == "commit":
        if any(a.startswith("-F") for a in _options(extra)):
            raise ToolError("commit takes `message`, not a message file (-F)")
        if args.message is None and not _has_message(extra):
            raise ToolError("commit needs a message: set `message`")
        return ["commit", *(["-m", args.message] if args.message is not None else []), *extra]
    if action == "branch":
        return ["branch", *extra, *([args.branch] if args.branch else [])]
    if action == "checkout":
        if args.branch is None:
            if not extra:
                raise ToolError("checkout needs `branch` (or paths/refs in args)")
            return ["checkout", *extra]
        return ["checkout", *(["-b"] if args.create else []), args.branch, *extra]
    if action == "merge":
        if args.branch is None and not extra:
            raise ToolError("merge needs `branch` (or a ref in args)")
        message = ["-m", args.message] if args.message is not None else []
        return ["merge", "--no-edit", *message, *extra, *([args.branch] if args.branch else [])]
    if action == "stash":
        if args.message is not None:
            return ["stash", "push", "-m", args.message, *extra]
        return ["stash", *extra]
    return [action, *extra]  # diff, show, reset: git's own defaults (reset is never --hard unasked)


def refused_option(argv: list[str]) -> str | None:
    """The first argument (before `--`) that git must not be given through the tool, if any."""
    for arg in _options(argv):
        if arg[:2] in _REFUSED_SHORT:
            return arg
        name = arg.split("=", 1)[0]
        if (
            name.startswith("--")
            and len(name) >= _MIN_ABBREVIATION
            and any(refused.startswith(name) for refused in _REFUSED_LONG)
        ):
            return arg
    return None


def _options(argv: list[str]) -> list[str]:
    """The option-looking arguments before `--` (after it everything is a path)."""
    options = []
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("-") and arg != "-":
            options.append(arg)
    return options


def _has_message(argv: list[str]) -> bool:
    """-m in any form: `-m`, `-mtext`, bundled `-am`, `--message`, `--message=text`."""
    return any(
        a == "--message" or a.startswith("--message=") or (not a.startswith("--") and "m" in a)
        for a in _options(argv)
    )


def _check_fields(args: GitInput) -> None:
    if args.create and args.action not in ("checkout", "branch"):
        raise ToolError("`create` only applies to checkout (and branch)")
    if args.create and args.branch is None:
        raise ToolError("`create` needs `branch`: the name of the branch to create")
    if args.branch is not None and args.action not in ("checkout", "branch", "merge"):
        raise ToolError(f"`branch` is not used by {args.action}; put refs in `args`")
    if args.message is not None and args.action not in ("commit", "merge", "stash"):
        raise ToolError(f"`message` is not used by {args.action}")


TOOLS: list[Tool] = [git]

"""Which test runner a package.json `test` script starts, and how to ask it for a report.

The script is split into its shell commands (`&&`, `||`, `;`, `|`); the runner is the command
that starts jest, vitest, mocha or `node --test` (through `npx`, `nyc`, `c8`, `cross-env` or
`VAR=value` prefixes too), following `npm run other-script` into that script. When the runner
is the script's last command, extra arguments given after `npm test --` (or `npm run NAME --`)
reach it, so the project's own script runs as its developers run it. Otherwise the runner's
command is started directly from `node_modules/.bin`, with the script's arguments.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNNER_PROGRAMS = {"jest": "jest", "vitest": "vitest", "mocha": "mocha", "_mocha": "mocha"}
OPERATORS = frozenset({"&&", "||", ";", "|", "&"})
WRAPPERS = frozenset({"npx", "nyc", "c8", "cross-env", "env", "dotenv", "--"})
DELEGATORS = {("npm", "run"), ("npm", "run-script"), ("yarn", "run"), ("pnpm", "run")}
MAX_DEPTH = 5  # scripts calling scripts


@dataclass
class RunnerCall:
    """Where the runner is in the scripts, and the words of its own command."""

    runner: str  # jest | vitest | mocha | node --test
    script: str  # the package.json script that runs it
    last: bool  # it is that script's last command, so `npm run SCRIPT -- ARGS` reaches it
    words: list[str]  # its command from the runner program on (wrappers dropped)
    env: dict[str, str] = field(default_factory=dict)  # VAR=value assignments before it

    def npm_argv(self, npm: str, extra: list[str]) -> list[str]:
        """`npm test -- EXTRA` or `npm run SCRIPT -- EXTRA`."""
        head = [npm, "test"] if self.script == "test" else [npm, "run", self.script]
        return [*head, "--", *extra] if extra else head


def find_runner(scripts: dict[str, Any], name: str = "test", depth: int = 0) -> RunnerCall | None:
    """The known runner the script `name` starts, or None (unknown runner or shell syntax)."""
    script = scripts.get(name)
    if not isinstance(script, str) or depth > MAX_DEPTH:
        return None
    commands = split_commands(script)
    if commands is None:
        return None
    for index, words in enumerate(commands):
        env, words = _assignments(words)
        last = index == len(commands) - 1
        if (found := _runner_in(words)) is not None:
            runner, start, wrapped_env = found
            return RunnerCall(runner, name, last, _until_redirect(words[start:]), {**env, **wrapped_env})
        target = _delegated(words)
        if target is not None and (call := find_runner(scripts, target, depth + 1)) is not None:
            return call
    return None


def split_commands(script: str) -> list[list[str]] | None:
    """The script's commands as word lists; None when it is not plain shell words."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote
        return None
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in OPERATORS:
            commands.append([])
        elif token in ("(", ")"):
            return None  # subshells are beyond a word list
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def resolve_program(root: Path, words: list[str]) -> list[str]:
    """The command with its program from the project's node_modules/.bin when it is there."""
    local = root / "node_modules" / ".bin" / Path(words[0]).name
    return [str(local), *words[1:]] if local.is_file() else words


def _runner_in(words: list[str]) -> tuple[str, int, dict[str, str]] | None:
    """The runner, where its command starts, and the variables wrappers (cross-env) set."""
    env: dict[str, str] = {}
    node_at = None  # `node [options] path/to/jest.js`: the command starts at node
    wrapped = False  # after nyc/c8/npx, an unknown word is one of their option values
    for i, word in enumerate(words):
        program = _program(word)
        if program in RUNNER_PROGRAMS:
            return RUNNER_PROGRAMS[program], i if node_at is None else node_at, env
        if program == "node":
            if "--test" in _options(words[i + 1 :]):
                return "node --test", i, env
            node_at = i
        elif _is_assignment(word):
            key, value = word.split("=", 1)
            env[key] = value
        elif program in WRAPPERS:
            wrapped = True
        elif not (word.startswith("-") or wrapped):
            return None  # some other program: not a runner we know
    return None


def _program(word: str) -> str:
    """The program a word names: `node_modules/.bin/jest` and `.../bin/jest.js` are jest."""
    name = Path(word).name
    for suffix in (".js", ".cjs", ".mjs"):
        name = name.removesuffix(suffix)
    return name


def _is_assignment(word: str) -> bool:
    return "=" in word and word.split("=", 1)[0].isidentifier()


def _options(words: list[str]) -> list[str]:
    """The leading options of a command (those before its first argument)."""
    out = []
    for word in words:
        if not word.startswith("-"):
            break
        out.append(word.split("=", 1)[0])
    return out


def _assignments(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading `VAR=value` words as variables, and the rest of the command."""
    env: dict[str, str] = {}
    rest = list(words)
    while rest and _is_assignment(rest[0]):
        key, value = rest.pop(0).split("=", 1)
        env[key] = value
    return env, rest


def _delegated(words: list[str]) -> str | None:
    """The script an `npm run NAME` (or yarn/pnpm) command runs."""
    if len(words) >= 3 and (Path(words[0]).name, words[1]) in DELEGATORS:
        return words[2]
    if len(words) >= 2 and Path(words[0]).name in ("yarn", "pnpm") and not words[1].startswith("-"):
        return words[1]
    return None


def _until_redirect(words: list[str]) -> list[str]:
    """The words before a redirection (`>`, `2>&1`...): those are the shell's, not the runner's."""
    for i, word in enumerate(words):
        if set(word) <= set("<>&") and word:
            # "2>&1" splits into "2", ">&", "1": the file descriptor belongs to the redirection.
            return words[: i - 1] if i and words[i - 1].isdigit() else words[:i]
    return words

"""Shared CLI plumbing: consoles, error reporting, running coroutines with exit codes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import IO, Any, TypeVar

from rich.console import Console
from rich.text import Text

from keen.errors import KeenError

T = TypeVar("T")

EXIT_OK = 0
EXIT_NOT_COMPLETED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_PIPE = 128 + signal.SIGPIPE  # 141, as `git log | head` ends when its reader leaves
# Output that is not a terminal (a pipe, a file) is not wrapped at 80 columns: lines are as
# long as their content, up to this, unless COLUMNS says otherwise.
PIPE_WIDTH = 4096
# Lines rendered per call when many are printed at once (a call costs far more than a line).
LINES_PER_RENDER = 200


class OutputClosed(Exception):
    """Whoever read keen's output has gone (`keen … | head`)."""


class KeenConsole(Console):
    """A console whose closed output (a pipe whose reader left) is a request to stop: what
    follows is discarded, and `on_closed` is called (a running session is cancelled) or, when
    there is none, `OutputClosed` is raised so the command exits quietly."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.closed = False
        self.on_closed: Callable[[], None] | None = None

    def on_broken_pipe(self) -> None:
        self.quiet = True
        if not self.closed:
            self.closed = True
            discard(self.file)
            if self.on_closed is not None:
                self.on_closed()
                return
        raise OutputClosed


def print_lines(console: Console, lines: Iterable[Text]) -> None:
    """Many one-line texts (a session's log) at once, never wrapped: plain text when the output
    is not a terminal, else rendered a few hundred per call; printing them one by one costs Rich
    ten times as much."""
    if console.quiet:
        return
    if not console.is_terminal:
        try:
            console.file.write("".join(f"{line.plain}\n" for line in lines))
            console.file.flush()
        except BrokenPipeError:
            console.on_broken_pipe()
        return
    batch: list[Text] = []
    for line in lines:
        batch.append(line)
        if len(batch) == LINES_PER_RENDER:
            console.print(Text("\n").join(batch), soft_wrap=True)
            batch.clear()
    if batch:
        console.print(Text("\n").join(batch), soft_wrap=True)


def discard(stream: IO[str]) -> None:
    """Send what is still written to `stream` to /dev/null (so Python's final flush is quiet)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _console(stderr: bool) -> KeenConsole:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return KeenConsole(stderr=stderr, highlight=False, width=width)


def stdout_console() -> KeenConsole:
    return _console(stderr=False)


def stderr_console() -> KeenConsole:
    return _console(stderr=True)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    stderr_console().print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return code


def guarded(fn: Callable[[], int]) -> int:
    """Run a command body; keen's own errors become a message and their exit code, and a reader
    that went away (`| head`) a quiet exit like any command-line tool's."""
    try:
        return fn()
    except KeenError as exc:
        return fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OutputClosed:
        return EXIT_PIPE
    except BrokenPipeError:
        discard(sys.stdout)
        return EXIT_PIPE


def settings_or_fail() -> Any:
    """Settings from the environment, checked before the command does anything: a bad value,
    an unusable KEEN_HOME or an unreachable database is a configuration error naming it."""
    from keen.runner.preflight import check_configuration

    settings = load_settings()
    check_configuration(settings)
    return settings


def load_settings() -> Any:
    """Settings from the environment; a value that does not parse is a configuration error."""
    from pydantic import ValidationError

    from keen.config import get_settings
    from keen.errors import ConfigError

    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


def print_json(data: Any) -> None:
    """One indented JSON document on stdout. orjson indents fifty times faster than the json
    module (whose C encoder does not indent); anything it cannot encode, and every value it would
    encode differently (datetimes, dataclasses, subclasses), gets the json module's `str()`."""
    import orjson

    options = (
        orjson.OPT_INDENT_2
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )
    try:
        text = orjson.dumps(data, default=str, option=options).decode()
    except (orjson.JSONEncodeError, TypeError):
        import json

        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

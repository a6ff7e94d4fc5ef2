"""Shared CLI plumbing: consoles, error reporting, running coroutines with exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console

from keen.errors import KeenError

T = TypeVar("T")

EXIT_OK = 0
EXIT_NOT_COMPLETED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def stdout_console() -> Console:
    return Console(highlight=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    stderr_console().print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return code


def guarded(fn: Callable[[], int]) -> int:
    """Run a command body; keen's own errors become a message and their exit code."""
    try:
        return fn()
    except KeenError as exc:
        return fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def settings_or_fail() -> Any:
    """Settings from the environment; a bad value is a configuration error naming it."""
    from pydantic import ValidationError

    from keen.config import get_settings
    from keen.errors import ConfigError

    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()

"""`keen breathe` and `keen sessions resume`: run a session in this process with a live view."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from keen.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_COMPLETED,
    EXIT_OK,
    guarded,
    print_json,
    settings_or_fail,
    stderr_console,
    stdout_console,
)
from keen.errors import InputError

VISION_FILE_LIMIT = 1_000_000  # bytes read from a vision file before its length is checked


def read_vision(vision: str | None, file: Path | None) -> str:
    """The vision text from `-f FILE` (which wins) or the argument."""
    if file is not None:
        if not file.is_file():
            raise InputError(f"vision file {file} does not exist")
        try:
            with file.open("rb") as handle:
                data = handle.read(VISION_FILE_LIMIT + 1)
        except OSError as exc:
            raise InputError(f"cannot read vision file {file}: {exc.strerror}") from None
        if len(data) > VISION_FILE_LIMIT:
            raise InputError(f"vision file {file} is larger than {VISION_FILE_LIMIT:,} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"vision file {file} is not UTF-8 text") from None
    if vision is None:
        raise InputError('give a vision: keen breathe "what to build" (or -f FILE, or a shorthand word)')
    return vision


def breathe_command(
    *,
    vision: str | None,
    file: Path | None,
    directory: Path | None,
    model: str | None,
    max_iterations: int,
    budget: str,
    phase: str,
    max_depth: int,
    gates: str,
    web_search: bool,
    allow_dirty: bool,
    dry_run: bool,
    max_parallel: int = 3,
    verbose: bool,
    as_json: bool,
) -> int:
    from keen.runner.options import make_options

    def body() -> int:
        settings = settings_or_fail()
        options = make_options(
            settings,
            vision=read_vision(vision, file),
            directory=directory,
            model=model,
            max_iterations=max_iterations,
            budget=budget,
            phase=phase,
            max_depth=max_depth,
            gates=gates,
            web_search=web_search,
            allow_dirty=allow_dirty,
            max_parallel=max_parallel,
        )
        if dry_run:
            return _dry_run(options, as_json)
        return run_new_session(settings, options, verbose=verbose, as_json=as_json)

    return guarded(body)


def run_new_session(
    settings: Any,
    options: Any,
    *,
    verbose: bool = False,
    as_json: bool = False,
    on_finished: Callable[[dict[str, Any]], None] | None = None,
    on_signal: Callable[[int], None] | None = None,
) -> int:
    """Create and run a root session from validated `RunOptions` under the live view."""

    async def start(service: Any) -> Any:
        spec = await service.create(options)
        return await service.run(spec.session_id)

    return run_with_view(
        settings,
        start,
        model=options.model,
        budget=options.budget,
        max_iterations=options.max_iterations,
        verbose=verbose,
        as_json=as_json,
        on_finished=on_finished,
        on_signal=on_signal,
    )


def resume_command(session_id: str, *, as_json: bool) -> int:
    def body() -> int:
        from keen.runner.options import RunOptions
        from keen.runner.sessions import SessionService

        settings = settings_or_fail()

        async def lookup() -> Any:
            async with SessionService(settings) as service:
                root = await service.check_resumable(session_id)
                return root.id, RunOptions.from_json(root.options)

        root_id, options = asyncio.run(lookup())

        async def resume(service: Any) -> Any:
            return await service.resume(root_id)

        return run_with_view(
            settings,
            resume,
            model=options.model,
            budget=options.budget,
            max_iterations=options.max_iterations,
            verbose=False,
            as_json=as_json,
            replay_from=root_id,
        )

    return guarded(body)


def run_with_view(
    settings: Any,
    start: Callable[[Any], Awaitable[Any]],
    *,
    model: str,
    budget: Any,
    max_iterations: int,
    verbose: bool,
    as_json: bool,
    replay_from: str | None = None,
    on_finished: Callable[[dict[str, Any]], None] | None = None,
    on_signal: Callable[[int], None] | None = None,
) -> int:
    """Run `start(service)` under a live view with Ctrl-C/SIGTERM cancelling it (`on_signal` is
    told which one); print the report."""
    from keen.cli.views import SessionView, report_renderable
    from keen.events import types as ev
    from keen.runner.sessions import SessionService

    console = stderr_console() if as_json else stdout_console()
    live = console.is_terminal and not os.environ.get("KEEN_PLAIN")
    view = SessionView(
        console, model=model, budget=budget, max_iterations=max_iterations, live=live, verbose=verbose
    )
    finished: dict[str, Any] = {}

    def capture(item: Any) -> None:
        view.handle(item)
        if getattr(item, "type", None) == ev.SESSION_FINISHED and item.parent_session_id is None:
            finished.update(item.data, session_id=item.session_id)

    async def main() -> int:
        async with SessionService(settings) as service:
            if replay_from is not None:  # show the tree so far before continuing it
                for event in await service.events(replay_from):
                    view.tree.apply(event)
            service.watch(capture)
            task = asyncio.ensure_future(start(service))
            _cancel_on_signals(task, on_signal)
            with view:
                try:
                    await task
                except asyncio.CancelledError:
                    return EXIT_INTERRUPTED
            return EXIT_OK if finished.get("status") == "completed" else EXIT_NOT_COMPLETED

    code = asyncio.run(main())
    if finished and on_finished is not None:
        on_finished(finished)
    if as_json:
        print_json(finished)
    elif finished:
        console.print(report_renderable(finished, finished["session_id"], view.tree))
    return code


def _cancel_on_signals(task: asyncio.Future[Any], on_signal: Callable[[int], None] | None) -> None:
    """First Ctrl-C (or SIGTERM) cancels the session cleanly; a second one exits at once."""
    loop = asyncio.get_running_loop()
    pressed = {"count": 0}

    def handler(sig: int) -> None:
        pressed["count"] += 1
        if pressed["count"] > 1:
            os._exit(EXIT_INTERRUPTED)
        if on_signal is not None:
            on_signal(sig)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler, sig)


def _dry_run(options: Any, as_json: bool) -> int:
    from keen.runner.sessions import dry_run_plan

    plan = dry_run_plan(options)
    if as_json:
        print_json(plan)
        return EXIT_OK
    console: Console = stdout_console()
    table = Table.grid(padding=(0, 2))
    for key in (
        "model",
        "workspace",
        "max_iterations",
        "budget_usd",
        "phase",
        "max_depth",
        "max_parallel",
        "gates",
        "web_search",
    ):
        table.add_row(key, str(plan[key]))
    table.add_row("tools", ", ".join(plan["tools"]))
    console.print(Panel(table, title="keen breathe --dry-run: the plan (no model is called)"))
    console.print(Panel(Syntax(plan["system_prompt"], "markdown", word_wrap=True), title="system prompt"))
    console.print(Panel(plan["first_message"], title="first message"))
    sys.stdout.flush()
    return EXIT_OK

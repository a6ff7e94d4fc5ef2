"""`keen breathe` and `keen sessions resume`: run a session in this process with a live view."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from keen.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_COMPLETED,
    EXIT_OK,
    EXIT_PIPE,
    guarded,
    print_json,
    settings_or_fail,
    stderr_console,
    stdout_console,
)
from keen.errors import InputError
from keen.runner.options import RunOptions

if TYPE_CHECKING:
    from keen.agent.spec import AgentResult
    from keen.runner.sessions import SessionService

VISION_FILE_LIMIT = 1_000_000  # bytes read from a vision file before its length is checked


STDIN = Path("-")  # `-f -` reads the vision from standard input


def read_vision(vision: str | None, file: Path | None) -> str:
    """The vision text from `-f FILE` (which wins; `-` is standard input) or the argument."""
    if file == STDIN:
        return _decoded(sys.stdin.buffer.read(VISION_FILE_LIMIT + 1), "the vision on standard input")
    if file is not None:
        if not file.is_file():
            raise InputError(f"vision file {file} does not exist")
        try:
            with file.open("rb") as handle:
                data = handle.read(VISION_FILE_LIMIT + 1)
        except OSError as exc:
            raise InputError(f"cannot read vision file {file}: {exc.strerror}") from None
        return _decoded(data, f"vision file {file}")
    if vision is None:
        raise InputError('give a vision: keen breathe "what to build" (or -f FILE, or a shorthand word)')
    return vision


def _decoded(data: bytes, what: str) -> str:
    if len(data) > VISION_FILE_LIMIT:
        raise InputError(f"{what} is larger than {VISION_FILE_LIMIT:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8 text") from None


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
    max_parallel: int,
    verbose: bool,
    as_json: bool,
    local: bool = False,
) -> int:
    from keen.runner.options import make_options

    def body() -> int:
        settings = settings_or_fail()
        run: dict[str, Any] = {
            "directory": directory,
            "model": model,
            "max_iterations": max_iterations,
            "budget": budget,
            "phase": phase,
            "max_depth": max_depth,
            "gates": gates,
            "web_search": web_search,
            "allow_dirty": allow_dirty,
            "max_parallel": max_parallel,
        }
        if not local and (client := _server_login(settings)) is not None:
            from keen.cli.commands.remote_breathe import breathe_on_server

            with client:
                return breathe_on_server(
                    client, read_vision(vision, file), run, dry_run=dry_run, verbose=verbose, as_json=as_json
                )
        options = make_options(settings, vision=read_vision(vision, file), **run)
        if dry_run:
            return _dry_run(options, as_json)
        return run_new_session(settings, options, verbose=verbose, as_json=as_json)

    return guarded(body)


def _server_login(settings: Any) -> Any:
    from keen.cli.credentials import login_client

    return login_client(settings.keen_home)


@dataclass
class Prepared:
    """A session ready to run: what the view shows about it."""

    root_id: str
    options: RunOptions
    fresh: bool  # a new session: its stored events are shown; a resumed one only continues


def run_new_session(
    settings: Any,
    options: RunOptions,
    *,
    verbose: bool = False,
    as_json: bool = False,
    on_finished: Callable[[dict[str, Any]], None] | None = None,
    on_signal: Callable[[int], None] | None = None,
) -> int:
    """Create and run a root session from validated `RunOptions` under the live view."""

    async def prepare(service: SessionService) -> Prepared:
        spec = await service.create(options)
        return Prepared(spec.session_id, options, fresh=True)

    async def execute(service: SessionService, root_id: str) -> AgentResult:
        return await service.run(root_id)

    return run_with_view(
        settings,
        prepare,
        execute,
        verbose=verbose,
        as_json=as_json,
        on_finished=on_finished,
        on_signal=on_signal,
    )


def resume_command(session_id: str, *, as_json: bool) -> int:
    def body() -> int:
        async def prepare(service: SessionService) -> Prepared:
            root = await service.check_resumable(session_id)
            return Prepared(root.id, RunOptions.from_json(root.options), fresh=False)

        async def execute(service: SessionService, root_id: str) -> AgentResult:
            return await service.resume(root_id)

        return run_with_view(settings_or_fail(), prepare, execute, verbose=False, as_json=as_json)

    return guarded(body)


def run_with_view(
    settings: Any,
    prepare: Callable[[SessionService], Awaitable[Prepared]],
    execute: Callable[[SessionService, str], Awaitable[AgentResult]],
    *,
    verbose: bool,
    as_json: bool,
    on_finished: Callable[[dict[str, Any]], None] | None = None,
    on_signal: Callable[[int], None] | None = None,
) -> int:
    """`prepare` the session (its errors come before any output), then `execute` it under a
    live view with Ctrl-C/SIGTERM cancelling it (`on_signal` is told which one) and print the
    report. Output that closes (`| head`) cancels the session too, and keen exits quietly."""
    from keen.gcpause import paused_until_kept

    # The modules imported, a long log read and a resumed conversation rebuilt live until the
    # command exits: no collection walks them, and they are frozen once the session has started
    # (see keen.gcpause).
    with paused_until_kept() as keep:
        return _run_with_view(
            keep, settings, prepare, execute, verbose, as_json, on_finished=on_finished, on_signal=on_signal
        )


def _run_with_view(
    keep: Callable[[], None],
    settings: Any,
    prepare: Callable[[SessionService], Awaitable[Prepared]],
    execute: Callable[[SessionService, str], Awaitable[AgentResult]],
    verbose: bool,
    as_json: bool,
    *,
    on_finished: Callable[[dict[str, Any]], None] | None,
    on_signal: Callable[[int], None] | None,
) -> int:
    from keen.cli.views import SessionView, report_renderable
    from keen.events import types as ev
    from keen.events.types import Event
    from keen.runner.sessions import SessionService

    console = stderr_console() if as_json else stdout_console()
    live = console.is_terminal and not os.environ.get("KEEN_PLAIN")
    finished: dict[str, Any] = {}
    views: list[SessionView] = []

    async def main() -> int:
        async with SessionService(settings) as service:
            prepared = await prepare(service)
            options = prepared.options
            view = SessionView(
                console,
                model=options.model,
                budget=options.budget,
                max_iterations=options.max_iterations,
                live=live,
                verbose=verbose,
            )
            views.append(view)

            running = {"started": False, "cancel_when_started": False}

            def capture(item: Any) -> None:
                view.handle(item)
                if not isinstance(item, Event) or item.parent_session_id is not None:
                    return  # a live delta, or a child's event
                if item.type in (ev.SESSION_STARTED, ev.SESSION_RESUMED):
                    running["started"] = True
                    keep()
                    if running["cancel_when_started"]:
                        task.cancel()
                elif item.type == ev.SESSION_FINISHED:
                    finished.update(item.data, session_id=item.session_id)

            def output_closed() -> None:
                # `| head` has read enough: stop the run as Ctrl-C does, once it has started
                # (cancelled before that, it would stay `created` for ever).
                if running["started"]:
                    task.cancel()
                else:
                    running["cancel_when_started"] = True

            stored = await service.events(prepared.root_id)
            service.watch(capture, prepared.root_id)
            task = asyncio.ensure_future(execute(service, prepared.root_id))
            console.on_closed = output_closed
            _cancel_on_signals(task, on_signal)
            with view:
                for event in stored:  # a new session's first events; the tree so far of a resumed one
                    if prepared.fresh:
                        view.handle(event)
                    else:
                        view.tree.apply(event)
                try:
                    await task
                except asyncio.CancelledError:
                    return EXIT_PIPE if console.closed else EXIT_INTERRUPTED
            return EXIT_OK if finished.get("status") == "completed" else EXIT_NOT_COMPLETED

    code = asyncio.run(main())
    if finished and on_finished is not None:
        on_finished(finished)
    if as_json:
        print_json(finished)
    elif finished and not console.closed:
        console.print(report_renderable(finished, finished["session_id"], views[0].tree))
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


def _dry_run(options: RunOptions, as_json: bool) -> int:
    from rich.syntax import Syntax  # pygments: only the dry run's prompt panel needs it

    from keen.gitrepo import plan_workspace
    from keen.runner.sessions import dry_run_plan

    plan = dry_run_plan(options)
    workspace = asyncio.run(plan_workspace(options.workspace, allow_dirty=options.allow_dirty))
    plan["workspace_action"] = workspace.action
    plan["warnings"] = [f"the real run would refuse: {workspace.refusal}"] if workspace.refusal else []
    if workspace.note:
        plan["warnings"].append(workspace.note)
    if as_json:
        print_json(plan)
        return EXIT_OK
    for warning in plan["warnings"]:
        stderr_console().print(f"[bold yellow]warning:[/] {warning}", soft_wrap=True)
    console: Console = stdout_console()
    table = Table.grid(padding=(0, 2))
    for key in (
        "model",
        "workspace",
        "workspace_action",
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
    title = "keen breathe --dry-run: the plan (no model is called)"
    console.print(Panel(table, title=title, expand=False))
    console.print(
        Panel(Syntax(plan["system_prompt"], "markdown", word_wrap=True), title="system prompt", expand=False)
    )
    console.print(Panel(plan["first_message"], title="first message", expand=False))
    sys.stdout.flush()
    return EXIT_OK

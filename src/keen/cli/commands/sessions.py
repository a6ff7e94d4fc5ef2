"""`keen sessions list | show | logs | replay | cancel`: reading the event log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal
from typing import Any

from rich.table import Table
from rich.text import Text

from keen.cli.common import EXIT_OK, guarded, print_json, print_lines, settings_or_fail, stdout_console
from keen.errors import InputError

FOLLOW_POLL_SECONDS = 0.25


def _service() -> Any:
    from keen.runner.sessions import SessionService

    return SessionService(settings_or_fail())


def _reads() -> Any:
    """What the read commands read through: local mode's file directly, when it can be."""
    from keen.runner.session_view import session_reads

    return session_reads(settings_or_fail())


def list_command(*, limit: int, status: str | None, as_json: bool, local: bool = False) -> int:
    async def load() -> list[dict[str, Any]]:
        async with _service() as service:
            return [service.summary(r) for r in await service.recent(limit=limit, status=status)]

    def body() -> int:
        if limit < 1:
            raise InputError("--limit must be at least 1")
        if (client := _server(local)) is not None:
            from keen.cli.commands.remote_sessions import remote_list

            rows = remote_list(client, limit=limit, status=status)
        else:
            rows = asyncio.run(load())
        render_list(rows, as_json)
        return EXIT_OK

    return guarded(body)


def _server(local: bool) -> Any:
    """The logged-in server's client unless `--local` (then, or without a login, None)."""
    settings = settings_or_fail()
    if local:
        return None
    from keen.cli.credentials import login_client

    return login_client(settings.keen_home)


def render_list(rows: list[dict[str, Any]], as_json: bool) -> None:
    from keen.cli.views import STATUS_STYLE

    if as_json:
        print_json(rows)
        return
    table = Table("id", "status", "phase", "iterations", "cost", "created", "vision")
    for r in rows:
        table.add_row(
            r["short_id"],
            Text(r["status"], style=STATUS_STYLE.get(r["status"], "")),
            r["phase"] or "-",
            str(r["totals"]["iterations"]),
            f"${Decimal(r['totals']['cost_usd']):.4f}",
            r["created_at"][:16].replace("T", " "),
            Text(" ".join(r["vision"].split())[:60]),
        )
    stdout_console().print(table if rows else "no sessions yet")


def show_command(session_id: str, *, tree: bool, events: bool, as_json: bool, local: bool = False) -> int:
    from keen.events.projections import TreeProjection

    async def load() -> tuple[dict[str, Any], list[Any], TreeProjection]:
        async with _reads() as service:
            row = await service.get(session_id)
            log = await service.events(row.root_id)
            return service.summary(row), log, await service.tree(row.root_id, log)

    def body() -> int:
        if (client := _server(local)) is not None:
            from keen.cli.commands.remote_sessions import remote_show

            summary, log, projection = remote_show(client, session_id)
        else:
            summary, log, projection = asyncio.run(load())
        render_show(summary, log, projection, tree=tree, events=events, as_json=as_json)
        return EXIT_OK

    return guarded(body)


def render_show(
    summary: dict[str, Any], log: list[Any], projection: Any, *, tree: bool, events: bool, as_json: bool
) -> None:
    """A session (`summary` as the API shows one) with its own events and its tree."""
    from keen.cli.views import event_line, report_renderable, tree_renderable
    from keen.events import types as ev
    from keen.runner.session_view import INTERRUPTED

    own = [e for e in log if e.session_id == summary["id"] or summary["parent"] is None]
    if as_json:
        print_json({**summary, "events": [e.to_dict() for e in own], "tree": projection.to_dict()})
        return
    console = stdout_console()
    finished = next(
        (e for e in reversed(own) if e.type == ev.SESSION_FINISHED and e.session_id == summary["id"]), None
    )
    if finished is not None:
        console.print(report_renderable(finished.data, summary["id"]))
    else:
        phase = f" in phase {summary['phase']}" if summary["phase"] else ""
        console.print(
            f"session {summary['short_id']}: {summary['status']}{phase}, "
            f"{summary['totals']['iterations']} iterations",
            soft_wrap=True,
        )
        console.print(Text(f"vision: {' '.join(summary['vision'].split())[:300]}"), soft_wrap=True)
        if summary["status"] == INTERRUPTED:
            console.print(
                f"its process is gone; continue it with: keen sessions resume {summary['short_id']}"
            )
    if tree:
        console.print(tree_renderable(projection))
    if events:
        branches = projection.branches()
        print_lines(console, [event_line(event, branches) for event in own])


def logs_command(session_id: str, *, follow: bool, local: bool = False) -> int:
    from keen.cli.views import event_line
    from keen.events import types as ev
    from keen.events.projections import TreeProjection

    async def stream() -> None:
        console = stdout_console()
        async with _reads() as service:
            row = await service.get(session_id)
            projection = TreeProjection()
            after = 0
            while True:
                batch = await service.events(row.root_id, after_seq=after)
                lines, finished = [], False
                for event in batch:
                    projection.apply(event)
                    lines.append(event_line(event, projection.branches()))
                    after = event.seq
                    if event.type == ev.SESSION_FINISHED and event.parent_session_id is None:
                        finished = True
                        break
                print_lines(console, lines)
                if finished or not follow:
                    return
                await asyncio.sleep(FOLLOW_POLL_SECONDS)

    def body() -> int:
        client = _server(local)
        with contextlib.suppress(KeyboardInterrupt):
            if client is not None:
                from keen.cli.commands.remote_sessions import remote_logs

                with client:
                    remote_logs(client, session_id, follow=follow)
            else:
                asyncio.run(stream())
        return EXIT_OK

    return guarded(body)


def replay_command(session_id: str, *, speed: float) -> int:
    """Feed the stored events through the same live view a running session uses."""
    from keen.cli.views import SessionView, report_renderable
    from keen.events import types as ev

    async def load() -> tuple[Any, list[Any]]:
        async with _reads() as service:
            root = await service.root(session_id)
            return root, await service.events(root.id)

    def body() -> int:
        if speed < 0:
            raise InputError("--speed must be 0 or more")
        root, log = asyncio.run(load())
        # Conversation sessions have options of their own, not an agent run's.
        budget = Decimal(str(root.options.get("budget", "0")))
        max_iterations = int(root.options.get("max_iterations") or root.iterations)
        console = stdout_console()
        view = SessionView(
            console,
            model=root.model,
            budget=budget,
            max_iterations=max_iterations,
            live=console.is_terminal,
            title=f"keen replay of session {root.short_id}",
        )
        finished = None
        with view:
            previous = None
            for event in log:
                if speed > 0 and previous is not None:
                    time.sleep(min((event.ts - previous).total_seconds() / speed, 2.0))
                previous = event.ts
                view.handle(event)
                if event.type == ev.SESSION_FINISHED and event.parent_session_id is None:
                    finished = event
        if finished is not None:
            console.print(report_renderable(finished.data, root.id, view.tree))
        return EXIT_OK

    return guarded(body)


def cancel_command(session_id: str, *, local: bool = False) -> int:
    """Record a cancel request; the process running the session stops it within one step."""

    async def request() -> Any:
        async with _service() as service:
            return await service.request_cancel(session_id)

    def body() -> int:
        if (client := _server(local)) is not None:
            from keen.cli.commands.remote_sessions import remote_cancel

            short_id = remote_cancel(client, session_id)
        else:
            short_id = asyncio.run(request()).short_id
        stdout_console().print(f"cancel requested for session {short_id}")
        return EXIT_OK

    return guarded(body)

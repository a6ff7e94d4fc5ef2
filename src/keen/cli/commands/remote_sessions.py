"""`keen sessions list | show | logs | cancel` against the server the CLI is logged in to."""

from __future__ import annotations

from typing import Any

from keen.cli.client import ServerClient
from keen.cli.common import print_lines, stdout_console
from keen.events.projections import TreeProjection
from keen.events.types import Event


def remote_list(client: ServerClient, *, limit: int, status: str | None) -> list[dict[str, Any]]:
    with client:
        rows: list[dict[str, Any]] = []
        while len(rows) < limit:
            page = client.get(
                "/agents/sessions", limit=min(limit - len(rows), 100), offset=len(rows), status=status
            )
            rows += page["items"]
            if not page["items"] or len(rows) >= page["total"]:
                break
        return rows


def remote_show(client: ServerClient, session_id: str) -> tuple[dict[str, Any], list[Event], TreeProjection]:
    from keen.cli.remote_run import stored_events

    with client:
        summary: dict[str, Any] = client.get(f"/agents/sessions/{session_id}")
        log = stored_events(client, summary["root"])
    projection = TreeProjection()
    for event in log:
        projection.apply(event)
    return summary, log, projection


def remote_logs(client: ServerClient, session_id: str, *, follow: bool) -> None:
    """The tree's events as lines; with `follow`, live until its root ends."""
    from keen.cli.remote_run import RemoteFollower, stored_events
    from keen.cli.views import event_line

    console = stdout_console()
    root = client.get(f"/agents/sessions/{session_id}")["root"]
    projection = TreeProjection()

    def show(events: list[Event]) -> None:
        lines = []
        for event in events:
            projection.apply(event)
            lines.append(event_line(event, projection.branches()))
        print_lines(console, lines)

    if not follow:
        show(stored_events(client, root))
        return
    for item in RemoteFollower(client, root).items():
        if isinstance(item, Event):
            show([item])


def remote_cancel(client: ServerClient, session_id: str) -> str:
    with client:
        session: dict[str, Any] = client.post(f"/agents/sessions/{session_id}/cancel")
    return str(session["short_id"])

"""`keen breathe` when logged in to a server: the run happens there, the CLI shows it live."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from keen.cli.client import ServerClient
from keen.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_COMPLETED,
    EXIT_OK,
    EXIT_PIPE,
    OutputClosed,
    fail,
    print_json,
    stderr_console,
    stdout_console,
)
from keen.errors import InputError

DEFAULT_MAX_PARALLEL = 3


def refuse_local_options(*, directory: Any, allow_dirty: bool, dry_run: bool, max_parallel: int) -> None:
    """Options of a local run have no meaning on the server: each one is refused, naming why."""
    if directory is not None:
        raise InputError(
            "--dir is for local runs: on the server each session works in a new workspace of its own "
            "(add --local to run in DIR here)"
        )
    if allow_dirty:
        raise InputError(
            "--allow-dirty is for local runs: the server's workspace is always new (add --local)"
        )
    if dry_run:
        raise InputError("--dry-run plans a local run: add --local to see its plan")
    if max_parallel != DEFAULT_MAX_PARALLEL:
        raise InputError("--max-parallel is for local runs: the server decides it (add --local)")


def breathe_on_server(
    client: ServerClient, vision: str, run: dict[str, Any], *, dry_run: bool, verbose: bool, as_json: bool
) -> int:
    """The checks of a local run's vision and limits, then the run on the server. `run` holds
    breathe's options as `make_options` takes them."""
    from keen.cli.remote_run import execute_body
    from keen.runner.options import check_run

    refuse_local_options(
        directory=run["directory"],
        allow_dirty=run["allow_dirty"],
        dry_run=dry_run,
        max_parallel=run["max_parallel"],
    )
    text, limits, phase = check_run(
        vision,
        max_iterations=run["max_iterations"],
        budget=run["budget"],
        phase=run["phase"],
        max_depth=run["max_depth"],
        gates=run["gates"],
        web_search=run["web_search"],
    )
    body = execute_body(
        text,
        model=run["model"],
        max_iterations=limits.max_iterations,
        budget=limits.budget,
        phase=phase.value,
        max_depth=limits.max_depth,
        gates=limits.gates,
        web_search=limits.web_search,
    )
    return run_remote(
        client,
        body,
        budget=limits.budget,
        max_iterations=limits.max_iterations,
        verbose=verbose,
        as_json=as_json,
    )


def run_remote(
    client: ServerClient,
    body: dict[str, Any],
    *,
    budget: Decimal,
    max_iterations: int,
    verbose: bool,
    as_json: bool,
) -> int:
    """Start the run on the server and follow it under the live view; Ctrl-C cancels it there."""
    from keen.cli.remote_run import RemoteFollower, SigtermAsInterrupt, cancel_remote, start
    from keen.cli.views import SessionView, report_renderable
    from keen.events import types as ev
    from keen.events.types import Event

    console = stderr_console() if as_json else stdout_console()

    def reconnecting(reason: str) -> None:
        stderr_console().print(
            f"[yellow]connection to {client.server} lost ({reason}); resuming the stream…[/]", soft_wrap=True
        )

    finished: dict[str, Any] = {}
    views: list[SessionView] = []
    session = start(client, body)
    root_id = str(session["id"])
    try:
        with SigtermAsInterrupt():
            view = SessionView(
                console,
                model=str(session.get("model") or "?"),
                budget=budget,
                max_iterations=max_iterations,
                live=console.is_terminal and not os.environ.get("KEEN_PLAIN"),
                verbose=verbose,
                title=f"keen breathe on {client.server}",
            )
            views.append(view)
            with view:
                for item in RemoteFollower(client, root_id, on_reconnecting=reconnecting).items():
                    view.handle(item)
                    if (
                        isinstance(item, Event)
                        and item.type == ev.SESSION_FINISHED
                        and item.session_id == root_id
                    ):
                        finished.update(item.data, session_id=root_id)
    except OutputClosed:  # `| head` has read enough: stopped as Ctrl-C stops it
        cancel_remote(client, root_id)
        return EXIT_PIPE
    except KeyboardInterrupt:
        problem = cancel_remote(client, root_id)
        if problem is not None:
            return fail(f"session {root_id} was not cancelled on {client.server}: {problem}")
        stderr_console().print(f"cancelled session {root_id} on {client.server}", soft_wrap=True)
        return EXIT_INTERRUPTED
    if as_json:
        print_json(finished)
    elif finished:
        console.print(report_renderable(finished, root_id, views[0].tree))
    return EXIT_OK if finished.get("status") == "completed" else EXIT_NOT_COMPLETED

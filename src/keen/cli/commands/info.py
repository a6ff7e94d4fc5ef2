"""`keen status`: mode, server, user, the sandbox in use and the effective configuration; with
--verbose also the run mode and, in distributed mode, the run queue as the database has it."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.table import Table

from keen import __version__
from keen.cli.common import EXIT_BAD_INPUT, EXIT_OK, fail, guarded, load_settings, print_json, stdout_console


def status_command(*, as_json: bool, verbose: bool) -> int:
    """The status, and every configuration problem a run would meet (then the exit code is 2)."""

    def body() -> int:
        from keen.runner.preflight import configuration_problems, masked_url

        settings = load_settings()
        problems = [*configuration_problems(settings, settings.keen_model), *_run_mode_problems(settings)]
        url = settings.keen_database_url
        data: dict[str, Any] = {
            "version": __version__,
            "mode": "local",
            "server": settings.keen_server,
            "user": None,
            "role": None,
            "credits": None,
            "model": settings.keen_model,
            "home": str(settings.keen_home),
            "database": f"sqlite {settings.local_database}"
            if url is None
            else masked_url(url.get_secret_value()),
            "sandbox": _sandbox(settings),
            "problems": problems,
        }
        if (account := server_account(settings.keen_home)) is not None:
            data.update(account)
            # Runs happen on the server: the local model's configuration does not matter there.
            problems = [
                *configuration_problems(settings, None),
                *_run_mode_problems(settings),
                *account.pop("problems"),
            ]
            data["problems"] = problems
        if verbose:
            data["run_mode"] = settings.keen_run_mode
            if settings.keen_run_mode == "distributed":
                data["queue"] = _queue(settings)
            data["config"] = settings.masked()
        code = EXIT_BAD_INPUT if problems else EXIT_OK
        if as_json:
            print_json(data)
            return code
        table = Table.grid(padding=(0, 2))
        if data["mode"] == "server":
            table.add_row("mode", "server (keen breathe runs there; --local runs here)")
            for key in ("server", "user", "role", "credits"):
                table.add_row(key, "-" if data[key] is None else str(data[key]))
        else:
            table.add_row("mode", "local (no server login; costs are measured, no credits are charged)")
        for key in ("model", "home", "database", "sandbox", "version"):
            table.add_row(key, str(data[key]))
        if verbose:
            table.add_row("run mode", RUN_MODES[data["run_mode"]])
            if "queue" in data:
                table.add_row("queue", _describe_queue(data["queue"]))
            table.add_row("", "")
            for key, value in data["config"].items():
                table.add_row(key, "-" if value is None else value)
        stdout_console().print(table)
        for problem in problems:
            fail(problem)
        return code

    return guarded(body)


RUN_MODES = {
    "inprocess": "inprocess (agent runs are tasks of the keen serve process)",
    "distributed": "distributed (agent runs are queued jobs that keen worker processes run)",
}


def _run_mode_problems(settings: Any) -> list[str]:
    from keen.errors import ConfigError
    from keen.runner.run_mode import check_run_mode

    try:
        check_run_mode(settings)
    except ConfigError as exc:
        return [exc.message]
    return []


QUEUE_READ_TIMEOUT_SECONDS = 5.0


def _queue(settings: Any) -> dict[str, Any]:
    """The run queue's waiting and running runs and live workers, or why they cannot be read
    (`{"unavailable": reason}`): a database that cannot be asked is shown, not raised."""
    from keen.runner.run_mode import QueueSchemaMissing, is_postgresql, read_queue_state
    from keen.store import Database

    if not is_postgresql(settings):
        return {"unavailable": "no PostgreSQL database (KEEN_DATABASE_URL)"}

    async def read() -> dict[str, Any]:
        db = Database(settings.database_url)
        try:
            state = await asyncio.wait_for(read_queue_state(db, settings), QUEUE_READ_TIMEOUT_SECONDS)
        finally:
            await db.dispose()
        return {"waiting": state.waiting, "running": state.running, "workers": state.workers}

    try:
        return asyncio.run(read())
    except QueueSchemaMissing as exc:
        return {"unavailable": str(exc)}
    except Exception as exc:  # any driver error or the timeout: the database cannot be asked now
        return {"unavailable": f"database unreachable ({type(exc).__name__})"}


def _describe_queue(queue: dict[str, Any]) -> str:
    if "unavailable" in queue:
        return f"unavailable: {queue['unavailable']}"
    return f"{queue['waiting']} waiting, {queue['running']} running, {queue['workers']} live workers"


def server_account(home: Any) -> dict[str, Any] | None:
    """Mode, server, user, role and credits of the stored login (None when there is none); a
    server that cannot be asked is a problem in the answer, not an exception."""
    from keen.cli.client import ServerClient
    from keen.errors import KeenError, NotFoundError

    client = ServerClient.from_login(home)
    if client is None:
        return None
    user = client.credentials.user if client.credentials else {}
    found: dict[str, Any] = {
        "mode": "server",
        "server": client.server,
        "user": user.get("email"),
        "role": user.get("role"),
        "credits": None,
        "problems": [],
    }
    with client:
        try:
            profile = client.get("/auth/profile")
            found.update(user=profile["email"], role=profile["role"])
            try:
                balance = client.get("/credits/balance")
                found["credits"] = "unlimited" if balance.get("unlimited") else balance.get("available")
            except NotFoundError:
                found["credits"] = None  # a server without the credits API
        except KeenError as exc:
            found["problems"].append(exc.message)
    return found


def _sandbox(settings: Any) -> str:
    """How agent commands are contained here; a sandbox that cannot be had is shown, not raised."""
    from keen.errors import ConfigError
    from keen.tools.sandbox import policy_from_settings

    try:
        return policy_from_settings(settings).describe()
    except ConfigError as exc:
        return f"unavailable: {exc.message}"

"""The `keen` command. Commands import their implementation lazily so `keen --help` stays fast
(no provider SDK, price table, database or web framework is imported to print help)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from keen import __version__

app = typer.Typer(
    name="keen",
    help="keen: an autonomous software-development agent that works in a git workspace.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
sessions_app = typer.Typer(help="Inspect, follow, resume, replay and cancel sessions.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")
db_app = typer.Typer(help="The database: migrations and their status.", no_args_is_help=True)
app.add_typer(db_app, name="db")
admin_app = typer.Typer(
    help="Server administration: accounts, credits and the audit log.", no_args_is_help=True
)
app.add_typer(admin_app, name="admin")
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
admin_app.add_typer(audit_app, name="audit")
credits_app = typer.Typer(help="Your credits on the server you are logged in to.", no_args_is_help=True)
app.add_typer(credits_app, name="credits")
keys_app = typer.Typer(help="Your API keys on the server you are logged in to.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DirOpt = Annotated[Path | None, typer.Option("--dir", "-d", help="Workspace directory (default: current).")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="PROVIDER:NAME (default KEEN_MODEL).")]
AllowDirtyOpt = Annotated[
    bool, typer.Option("--allow-dirty", help="Snapshot uncommitted changes first instead of refusing.")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the agent's text as it works.")]
TreeBudgetOpt = Annotated[str, typer.Option("--budget", help="USD for the whole agent tree.")]
MaxDepthOpt = Annotated[int, typer.Option("--max-depth", help="Deepest level of summoned agents.")]
MaxParallelOpt = Annotated[
    int,
    typer.Option("--max-parallel", help="Children of one parent that run at the same time (1: one by one)."),
]
GatesOpt = Annotated[str, typer.Option("--gates", help="Quality gates: standard, strict or off.")]
NoWebSearchOpt = Annotated[bool, typer.Option("--no-web-search", help="Disable the provider's web search.")]
LocalOpt = Annotated[bool, typer.Option("--local", help="Use this machine even when logged in to a server.")]


@app.callback()
def _global(
    no_color: Annotated[
        bool, typer.Option("--no-color", help="Turn colour off (NO_COLOR works too); also after a command.")
    ] = False,
) -> None:
    if no_color:
        os.environ["NO_COLOR"] = "1"


@app.command()
def breathe(
    vision: Annotated[
        str | None, typer.Argument(help="The vision, or a shorthand word (create, test, docs…).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the vision from a file (wins).")
    ] = None,
    directory: DirOpt = None,
    model: ModelOpt = None,
    max_iterations: Annotated[
        int, typer.Option("--max-iterations", help="Model calls for the whole tree.")
    ] = 100,
    budget: TreeBudgetOpt = "50",
    phase: Annotated[str, typer.Option("--phase", help="Starting phase.")] = "EXPLORE",
    max_depth: MaxDepthOpt = 10,
    max_parallel: MaxParallelOpt = 3,
    gates: GatesOpt = "standard",
    no_web_search: NoWebSearchOpt = False,
    allow_dirty: AllowDirtyOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan and prompt; call no model.")
    ] = False,
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
    local: LocalOpt = False,
) -> None:
    """Run a vision: an agent works in the workspace until it is done (or a limit is reached).
    Logged in to a server (keen login), it runs there and its events stream here."""
    from keen.cli.commands.breathe import breathe_command

    raise typer.Exit(
        breathe_command(
            vision=vision,
            file=file,
            directory=directory,
            model=model,
            max_iterations=max_iterations,
            budget=budget,
            phase=phase,
            max_depth=max_depth,
            max_parallel=max_parallel,
            gates=gates,
            web_search=not no_web_search,
            allow_dirty=allow_dirty,
            dry_run=dry_run,
            verbose=verbose,
            as_json=as_json,
            local=local,
        )
    )


@app.command()
def converse(
    directory: DirOpt = None,
    model: ModelOpt = None,
    budget: Annotated[str, typer.Option("--budget", help="USD for the conversation itself.")] = "5",
    run_budget: Annotated[
        str, typer.Option("--run-budget", help="USD for each agent tree that `breathe` runs.")
    ] = "50",
    max_iterations: Annotated[
        int, typer.Option("--max-iterations", help="Model calls for each tree that `breathe` runs.")
    ] = 100,
    max_depth: MaxDepthOpt = 10,
    gates: GatesOpt = "standard",
    no_web_search: NoWebSearchOpt = False,
) -> None:
    """Chat about the project (read-only); `manifest` writes a vision file, `breathe` runs it."""
    from keen.cli.commands.converse import converse_command

    raise typer.Exit(
        converse_command(
            directory=directory,
            model=model,
            budget=budget,
            run_budget=run_budget,
            max_iterations=max_iterations,
            max_depth=max_depth,
            gates=gates,
            web_search=not no_web_search,
        )
    )


@app.command()
def manifest(
    description: Annotated[
        str | None, typer.Argument(help="What to build or change (no model is called).")
    ] = None,
    directory: DirOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="The file to write (default: vision.md in --dir, never overwritten)."
        ),
    ] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Talk it through first; `done` writes the file.")
    ] = False,
    model: ModelOpt = None,
    budget: Annotated[str, typer.Option("--budget", help="USD for the conversation (--interactive).")] = "5",
) -> None:
    """Write a vision file for `keen breathe -f`."""
    from keen.cli.commands.manifest import manifest_command

    raise typer.Exit(
        manifest_command(
            description=description,
            directory=directory,
            output=output,
            interactive=interactive,
            model=model,
            budget=budget,
        )
    )


@app.command()
def evolve(
    directory: DirOpt = None,
    focus: Annotated[str | None, typer.Option("--focus", help="What to improve first.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write evolution-vision.md and stop; call no model.")
    ] = False,
    model: ModelOpt = None,
    budget: TreeBudgetOpt = "50",
    allow_dirty: AllowDirtyOpt = False,
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate the project and run keen on its weakest points (150 iterations)."""
    from keen.cli.commands.evolve import evolve_command

    raise typer.Exit(
        evolve_command(
            directory=directory,
            focus=focus,
            dry_run=dry_run,
            model=model,
            budget=budget,
            allow_dirty=allow_dirty,
            verbose=verbose,
            as_json=as_json,
        )
    )


@app.command()
def validate(
    directory: DirOpt = None,
    categories: Annotated[
        str | None, typer.Option("--categories", help="Comma-separated: syntax,style,tests,security,…")
    ] = None,
    fix: Annotated[bool, typer.Option("--fix", help="Apply ruff's safe fixes first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the validation engine on a project (outside any agent session)."""
    from keen.cli.commands.validate import validate_command

    wanted = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
    raise typer.Exit(validate_command(directory or Path.cwd(), wanted, fix, as_json))


@app.command()
def status(
    as_json: JsonOpt = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the effective configuration.")
    ] = False,
) -> None:
    """Mode, server, user and (with --verbose) the effective configuration, secrets masked."""
    from keen.cli.commands.info import status_command

    raise typer.Exit(status_command(as_json=as_json, verbose=verbose))


@app.command("whoami", hidden=True)
def whoami(as_json: JsonOpt = False) -> None:
    """Alias of `keen status`."""
    from keen.cli.commands.info import status_command

    raise typer.Exit(status_command(as_json=as_json, verbose=False))


@app.command()
def version() -> None:
    """Print keen's version."""
    typer.echo(f"keen {__version__}")


@sessions_app.command("list")
def sessions_list(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many sessions.")] = 20,
    status_filter: Annotated[
        str | None, typer.Option("--status", help="Only sessions with this status.")
    ] = None,
    as_json: JsonOpt = False,
    local: LocalOpt = False,
) -> None:
    """List recent sessions (the server's when logged in)."""
    from keen.cli.commands.sessions import list_command

    raise typer.Exit(list_command(limit=limit, status=status_filter, as_json=as_json, local=local))


@sessions_app.command("show")
def sessions_show(
    session_id: Annotated[str, typer.Argument(help="Session id or a prefix of it.")],
    tree: Annotated[bool, typer.Option("--tree", help="Draw the agent tree.")] = False,
    events: Annotated[bool, typer.Option("--events", help="List the events.")] = False,
    as_json: JsonOpt = False,
    local: LocalOpt = False,
) -> None:
    """Show a session: its totals, report, tree and events."""
    from keen.cli.commands.sessions import show_command

    raise typer.Exit(show_command(session_id, tree=tree, events=events, as_json=as_json, local=local))


@sessions_app.command("logs")
def sessions_logs(
    session_id: Annotated[str, typer.Argument(help="Session id or a prefix of it.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until it ends.")
    ] = False,
    local: LocalOpt = False,
) -> None:
    """Print a session's events, optionally following it live."""
    from keen.cli.commands.sessions import logs_command

    raise typer.Exit(logs_command(session_id, follow=follow, local=local))


@sessions_app.command("resume")
def sessions_resume(
    session_id: Annotated[str, typer.Argument(help="Session id or a prefix of it.")],
    as_json: JsonOpt = False,
) -> None:
    """Continue an interrupted session from its next model call."""
    from keen.cli.commands.breathe import resume_command

    raise typer.Exit(resume_command(session_id, as_json=as_json))


@sessions_app.command("replay")
def sessions_replay(
    session_id: Annotated[str, typer.Argument(help="Session id or a prefix of it.")],
    speed: Annotated[float, typer.Option("--speed", help="Replay speed factor (0 = no delays).")] = 0.0,
) -> None:
    """Play a stored session back through the live view."""
    from keen.cli.commands.sessions import replay_command

    raise typer.Exit(replay_command(session_id, speed=speed))


@sessions_app.command("cancel")
def sessions_cancel(
    session_id: Annotated[str, typer.Argument(help="Session id or a prefix of it.")],
    local: LocalOpt = False,
) -> None:
    """Cancel a running session (its running command is killed)."""
    from keen.cli.commands.sessions import cancel_command

    raise typer.Exit(cancel_command(session_id, local=local))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (a shared database is never migrated by a run)."""
    from keen.cli.commands.db import upgrade_command

    raise typer.Exit(upgrade_command())


@db_app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """Show the database's schema revision and this keen's (exit code 1 when it is behind)."""
    from keen.cli.commands.db import status_command

    raise typer.Exit(status_command(as_json=as_json))


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API server (refuses a database behind this keen: run `keen db upgrade`)."""
    from keen.cli.commands.serve import serve_command

    raise typer.Exit(serve_command(host=host, port=port))


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Agent runs this worker runs at once.")
    ] = 2,
    queues: Annotated[
        list[str] | None, typer.Option("--queues", help="Queues to take runs from (default: keen's).")
    ] = None,
) -> None:
    """Run agent runs queued by `keen serve` replicas (distributed mode, PostgreSQL)."""
    from keen.cli.commands.worker import worker_command

    raise typer.Exit(worker_command(concurrency=concurrency, queues=queues))


@admin_app.command("create-user")
def admin_create_user(
    email: Annotated[str, typer.Option("--email", help="The account's email (how it signs in).")],
    admin: Annotated[
        bool, typer.Option("--admin", help="A super admin: every admin privilege (the first admin).")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin instead of prompting.")
    ] = False,
    username: Annotated[str | None, typer.Option("--username", help="Default: from the email.")] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Default: from the email.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an account in the configured database (the password is asked for, never a default)."""
    from keen.cli.commands.admin import create_user_command

    raise typer.Exit(
        create_user_command(
            email=email,
            admin=admin,
            password_stdin=password_stdin,
            username=username,
            display_name=display_name,
            as_json=as_json,
        )
    )


@admin_app.command("grant-credits", context_settings={"ignore_unknown_options": True})
def admin_grant_credits(
    user: Annotated[str, typer.Argument(help="The account: its id, email or username.")],
    amount: Annotated[str, typer.Argument(help="Credits, e.g. 25 or 2.5 (negative takes them back).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger and the audit log).")] = (
        "granted by an operator"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Adjust an account's credits, with a reason (a ledger entry and an audit entry)."""
    from keen.cli.commands.admin_credits import grant_credits_command

    raise typer.Exit(grant_credits_command(user=user, amount=amount, reason=reason, as_json=as_json))


@admin_app.command("sweep-holds")
def admin_sweep_holds(as_json: JsonOpt = False) -> None:
    """Expire stale credit holds now (the server also does it on a timer)."""
    from keen.cli.commands.admin_credits import sweep_holds_command

    raise typer.Exit(sweep_holds_command(as_json=as_json))


@audit_app.command("verify")
def admin_audit_verify(as_json: JsonOpt = False) -> None:
    """Recompute the audit chain; exit code 1 naming the first entry edited, removed or reordered."""
    from keen.cli.commands.admin import audit_verify_command

    raise typer.Exit(audit_verify_command(as_json=as_json))


@app.command()
def login(
    server: Annotated[
        str | None, typer.Option("--server", help="The server's URL (default KEEN_SERVER).")
    ] = None,
    email: Annotated[str | None, typer.Option("--email", help="Your account's email.")] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password (and the MFA code on the next line) from stdin."
        ),
    ] = False,
) -> None:
    """Sign in to a keen server (password and MFA code asked without echo)."""
    from keen.cli.commands.account import login_command

    raise typer.Exit(login_command(server=server, email=email, password_stdin=password_stdin))


@app.command()
def logout() -> None:
    """Revoke the login on the server and delete the local credentials."""
    from keen.cli.commands.account import logout_command

    raise typer.Exit(logout_command())


@credits_app.command("balance")
def credits_balance(as_json: JsonOpt = False) -> None:
    """Your balance, what is held by running calls, and what is available."""
    from keen.cli.commands.credits import balance_command

    raise typer.Exit(balance_command(as_json=as_json))


@credits_app.command("history")
def credits_history(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many transactions.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Your credit transactions, newest first."""
    from keen.cli.commands.credits import history_command

    raise typer.Exit(history_command(limit=limit, as_json=as_json))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    scopes: Annotated[
        str | None, typer.Option("--scopes", help="Comma-separated scopes (default: yours).")
    ] = None,
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", help="Days until it expires.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key (it is printed this once)."""
    from keen.cli.commands.keys import create_command

    raise typer.Exit(
        create_command(name=name, scopes=scopes, expires_in_days=expires_in_days, as_json=as_json)
    )


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """Your API keys (never the keys themselves)."""
    from keen.cli.commands.keys import list_command

    raise typer.Exit(list_command(as_json=as_json))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (keen keys list).")]) -> None:
    """Revoke an API key."""
    from keen.cli.commands.keys import revoke_command

    raise typer.Exit(revoke_command(key_id))


def main() -> None:
    app(args=_without_no_color(sys.argv[1:]))


def _without_no_color(args: list[str]) -> list[str]:
    """`--no-color` works after the command too (`keen breathe … --no-color`), like the global
    option; arguments after `--` are left alone."""
    end = args.index("--") if "--" in args else len(args)
    if "--no-color" not in args[:end]:
        return args
    os.environ["NO_COLOR"] = "1"
    return [a for a in args[:end] if a != "--no-color"] + args[end:]

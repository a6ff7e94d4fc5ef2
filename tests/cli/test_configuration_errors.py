"""Configuration problems are found before any work: exit 2, one line, secrets masked, nothing
created, never a traceback, whichever command meets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from helpers import complete, run_keen, write_script
from keen.cli.app import app

PASSWORD = "s3cr3t-pw-value"
BROKEN_DATABASE = f"postgresql://keen:{PASSWORD}@127.0.0.1:9/db"

# Every command `keen --help` lists (and the hidden alias), with arguments it accepts.
COMMANDS: dict[str, list[str]] = {
    "breathe": ["breathe", "a vision long enough", "--dir", "new-dir"],
    "converse": ["converse"],
    "manifest": ["manifest", "a description of what to build"],
    "evolve": ["evolve", "--dry-run"],
    "validate": ["validate"],
    "status": ["status"],
    "whoami": ["whoami"],
    "sessions list": ["sessions", "list"],
    "sessions show": ["sessions", "show", "abcd"],
    "sessions logs": ["sessions", "logs", "abcd"],
    "sessions resume": ["sessions", "resume", "abcd"],
    "sessions replay": ["sessions", "replay", "abcd"],
    "sessions cancel": ["sessions", "cancel", "abcd"],
    "db upgrade": ["db", "upgrade"],
    "db status": ["db", "status"],
    "serve": ["serve", "--port", "8000"],
    "worker": ["worker"],
    "admin create-user": ["admin", "create-user", "--email", "a@example.org", "--password-stdin"],
    "admin audit": ["admin", "audit", "verify"],
    "login": ["login", "--server", "http://127.0.0.1:9", "--email", "a@example.org", "--password-stdin"],
    "logout": ["logout"],
    "credits balance": ["credits", "balance"],
    "credits history": ["credits", "history"],
    "keys create": ["keys", "create", "ci"],
    "keys list": ["keys", "list"],
    "keys revoke": ["keys", "revoke", "abcd"],
    "admin grant-credits": ["admin", "grant-credits", "a@example.org", "5"],
    "admin sweep-holds": ["admin", "sweep-holds"],
}


def _command_names() -> set[str]:
    group = typer.main.get_command(app)
    names: set[str] = set()
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        names |= {f"{name} {sub}" for sub in subcommands} if subcommands else {name}
    return names


def test_the_table_covers_every_command() -> None:
    assert _command_names() == {*COMMANDS, "version"}


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "script.json", [complete()])


@pytest.mark.parametrize("problem", ["database", "home"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_reports_a_broken_configuration_in_one_line(
    tmp_path: Path, script: Path, command: str, problem: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {"KEEN_MODEL": f"scripted:{script}"}
    if problem == "database":
        env["KEEN_DATABASE_URL"] = BROKEN_DATABASE
        expected = "cannot connect to the database postgresql://keen:***@127.0.0.1:9/db (KEEN_DATABASE_URL)"
    else:
        home = tmp_path / "a-file"
        home.write_text("not a folder\n")
        env["KEEN_HOME"] = str(home)
        expected = f"KEEN_HOME {home} is not a directory"
    result = run_keen(*COMMANDS[command], cwd=work, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), output
    assert "Traceback" not in output and PASSWORD not in output
    assert list(work.iterdir()) == []  # no folder, no vision file, no repository


def test_version_needs_no_configuration(tmp_path: Path) -> None:
    """The exception: `keen version` reads no configuration, so it answers even when it is broken."""
    result = run_keen("version", cwd=tmp_path, env={"KEEN_DATABASE_URL": BROKEN_DATABASE})
    assert result.returncode == 0 and result.stdout.startswith("keen ")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid json"),
        ('{"agents": {"main": [{"tool_calls": "read everything"}]}}', "agents.main.0.tool_calls"),
        ('{"agents": {"main": [{"usage": {"input_tokens": -1}}]}}', "agents.main.0.usage.input_tokens"),
    ],
)
def test_a_broken_script_is_refused_before_anything_is_created(
    tmp_path: Path, keen_home: Path, content: str, message: str
) -> None:
    (tmp_path / "broken.json").write_text(content)
    result = run_keen(
        "breathe", "a vision long enough", "--model", "scripted:broken.json", "--dir", "new", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "broken.json" in lines[0]
    assert "pydantic" not in result.stderr
    assert not (tmp_path / "new").exists()
    assert not (keen_home / "keen.db").exists()


def test_a_broken_price_file_is_refused_before_the_session(tmp_path: Path, keen_home: Path) -> None:
    script = write_script(tmp_path / "s.json", [complete()])
    prices = tmp_path / "prices.json"
    prices.write_text('{"claude-sonnet-5-5": {"input_per_token": 3}}')
    result = run_keen(
        "breathe",
        "a vision long enough",
        "--model",
        f"scripted:{script}",
        "--dir",
        "new",
        cwd=tmp_path,
        env={"KEEN_PRICES_FILE": str(prices)},
    )
    assert result.returncode == 2, result.stderr
    assert "KEEN_PRICES_FILE" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()
    assert not (keen_home / "keen.db").exists()


def test_status_reports_the_problems_a_run_would_meet(tmp_path: Path) -> None:
    bogus = run_keen("status", cwd=tmp_path, env={"KEEN_MODEL": "bogus"})
    assert bogus.returncode == 2
    assert "error: model 'bogus' must be PROVIDER:NAME" in bogus.stderr
    assert "model" in bogus.stdout  # the status itself is still shown
    data = json.loads(run_keen("status", "--json", cwd=tmp_path, env={"KEEN_MODEL": "openai:gpt-5"}).stdout)
    assert data["problems"] == [
        "model openai:gpt-5 needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)"
    ]
    script = write_script(tmp_path / "s.json", [complete()])
    fine = run_keen("status", cwd=tmp_path, env={"KEEN_MODEL": f"scripted:{script}"})
    assert fine.returncode == 0 and fine.stderr == ""


def test_the_database_error_names_no_password_even_from_a_bad_url(tmp_path: Path, keen_home: Path) -> None:
    result = run_keen(
        "sessions", "list", cwd=tmp_path, env={"KEEN_DATABASE_URL": f"mysql://keen:{PASSWORD}@localhost/db"}
    )
    assert result.returncode == 2
    assert "keen supports sqlite and postgresql, not mysql" in result.stderr
    assert PASSWORD not in result.stderr and "Traceback" not in result.stderr
    assert not (keen_home / "keen.db").exists()

"""The templates of the conversation, manifest and evolve commands render with their data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keen.agent.prompts.render import render
from keen.agent.vision import MAX_VISION_CHARS
from keen.cli.visionfile import ProjectFacts, render_vision_file, without_credentials
from keen.errors import InputError
from prompt_contexts import CONTEXTS


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_template_renders_every_value(name: str) -> None:
    text = render(name, **CONTEXTS[name])
    assert "{{" not in text and "{%" not in text
    for key, value in CONTEXTS[name].items():
        if isinstance(value, str):
            assert value in text, f"{key}={value!r} is missing from {name}"


def test_evolve_template_lists_each_kind_of_finding() -> None:
    text = render("evolve.j2", **CONTEXTS["evolve.j2"])
    for expected in (
        "`test_x` (test_x.py:3): boom",
        "and 2 more failing tests",
        "pytest: crashed",
        "## Errors",
        "## Missing tests",
        "[S105] password",
        "no README",
        "E501 ×4",
        "[C901] too complex",
        "ruff is not installed",
        "focus; give it priority wherever it applies: speed",
    ):
        assert expected in text


def test_vision_file_keeps_within_the_limit_and_refuses_what_cannot_fit(tmp_path: Path) -> None:
    facts = ProjectFacts(directory=tmp_path, name="p", is_repo=True, branch="main")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    written = render_vision_file(
        "Build it.", facts=facts, output=tmp_path / "v.md", origin="x", discussion="y" * 50_000, now=now
    )
    assert len(written.text) <= MAX_VISION_CHARS
    assert "characters are left out" in written.text and written.text.count("y") > 20_000
    assert written.run_command == f"keen breathe -f {tmp_path / 'v.md'} --dir {tmp_path} --allow-dirty"
    with pytest.raises(InputError, match="too long for a vision file"):
        render_vision_file("z" * MAX_VISION_CHARS, facts=facts, output=tmp_path / "v.md", origin="x", now=now)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:token@example.com/a.git", "https://example.com/a.git"),
        ("git@example.com:team/a.git", "git@example.com:team/a.git"),
        ("https://example.com/a.git", "https://example.com/a.git"),
    ],
)
def test_remote_urls_lose_their_credentials(url: str, shown: str) -> None:
    assert without_credentials(url) == shown

"""`keen manifest`: vision files that `keen breathe -f` runs as they are."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import call, complete, git, run_keen, turn, write_script

DESCRIPTION = "Add a greet.py module with a greet(name) function and a test for it."


def _run_file(
    vision_file: Path, project: Path, tmp_path: Path, turns: list[dict[str, Any]], *options: str
) -> subprocess.CompletedProcess[str]:
    """`keen breathe -f` on a written vision file, with a scripted agent doing `turns`."""
    work = write_script(tmp_path / "work.json", turns)
    return run_keen(
        "breathe",
        "-f",
        str(vision_file),
        "--dir",
        str(project),
        "--model",
        f"scripted:{work}",
        "--gates",
        "off",
        *options,
        cwd=tmp_path,
    )


def test_direct_mode_writes_the_file_without_any_model(
    project: Path, tmp_path: Path, keen_home: Path
) -> None:
    git(project, "remote", "add", "origin", "https://user:s3cret@example.com/team/project.git")
    empty = write_script(tmp_path / "empty.json", {"converse": [], "main": []})  # any call would fail
    result = run_keen(
        "manifest", DESCRIPTION, "--dir", str(project), "--model", f"scripted:{empty}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    path = project / "vision.md"
    assert f"Vision file written: {path}" in result.stdout
    text = path.read_text()
    assert text.startswith("# Add a greet.py module with a greet(name) function")
    assert "Created " in text and "with keen 0.1.0 (from a description)" in text
    assert "- Git branch: `main`" in text
    assert "- Git remote: origin https://example.com/team/project.git" in text  # no credentials
    assert "s3cret" not in text
    assert f"## Vision\n{DESCRIPTION}" in text
    assert "## Execution guidelines" in text and "## Discussion context" not in text
    assert f"keen breathe -f {path} --dir {project} --allow-dirty" in text
    # No model was built or called: no key is set, nothing was stored.
    assert not (keen_home / "keen.db").exists()

    # The file runs as written.
    work = [
        turn(call("write_files", path="greet.py", content="def greet(name):\n    return name\n")),
        complete(),
    ]
    ran = _run_file(path, project, tmp_path, work, "--allow-dirty", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["status"] == "completed"
    assert (project / "greet.py").is_file()


def test_default_name_is_never_overwritten_and_an_explicit_output_is_refused(project: Path) -> None:
    (project / "vision.md").write_text("mine\n")
    second = run_keen("manifest", DESCRIPTION, "--dir", str(project), cwd=project)
    assert second.returncode == 0, second.stderr
    assert (project / "vision.md").read_text() == "mine\n"
    assert (project / "vision-2.md").is_file()

    refused = run_keen("manifest", DESCRIPTION, "--output", "vision.md", cwd=project)
    assert refused.returncode == 2
    assert "already exists" in refused.stderr
    assert (project / "vision.md").read_text() == "mine\n"


def test_output_outside_the_repository_runs_without_allow_dirty(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "plans" / "greet.md"
    target.parent.mkdir()
    result = run_keen("manifest", DESCRIPTION, "--dir", str(project), "--output", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    assert f"keen breathe -f {target} --dir {project}\n" in text
    ran = _run_file(target, project, tmp_path, [complete()])
    assert ran.returncode == 0, ran.stdout + ran.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["manifest"], "give a description"),
        (["manifest", "too short"], "too short"),
        (["manifest", DESCRIPTION, "--dir", "nowhere"], "does not exist"),
        (["manifest", DESCRIPTION, "--output", "missing/v.md"], "does not exist"),
        (["manifest", "--interactive"], "ANTHROPIC_API_KEY"),
        (["manifest", "-i", "--model", "scripted:none.json"], "none.json"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, keen_home: Path, args: list[str], message: str
) -> None:
    result = run_keen(*args, cwd=tmp_path, input="done\n")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []
    assert not (keen_home / "keen.db").exists()


def test_interactive_mode_writes_the_discussion_on_done(project: Path, tmp_path: Path) -> None:
    # `converse` turns: the reply to the question, then the vision `done` synthesizes.
    script = write_script(
        tmp_path / "script.json",
        {
            "converse": [
                turn(text="A greeter fits in one module; greet(name) can return 'Hello, name!'."),
                turn(text="Add greet.py with greet(name) returning 'Hello, name!', and a pytest test."),
            ]
        },
    )
    result = run_keen(
        "manifest",
        "--interactive",
        "--dir",
        str(project),
        "--model",
        f"scripted:{script}",
        cwd=tmp_path,
        input="How should a greeter look here?\ndone\n",
    )
    assert result.returncode == 0, result.stderr
    path = project / "vision.md"
    assert f"Vision file written: {path}" in result.stdout
    text = path.read_text()
    assert text.startswith("# Add greet.py with greet(name)")
    assert "(from a conversation)" in text
    assert "## Discussion context" in text
    assert "**You:** How should a greeter look here?" in text
    assert "**keen:** A greeter fits in one module" in text
    assert f"keen breathe -f {path}" in text


def test_interactive_exit_leaves_without_writing(project: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", {"converse": [turn(text="Sure.")]})
    result = run_keen(
        "manifest",
        "-i",
        "--dir",
        str(project),
        "--model",
        f"scripted:{script}",
        cwd=tmp_path,
        input="hi there\nexit\n",
    )
    assert result.returncode == 0, result.stderr
    assert "No vision file was written." in result.stdout
    assert not (project / "vision.md").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True)
    assert status.stdout == ""


def test_interactive_fallback_is_labelled_and_the_file_still_runs(project: Path, tmp_path: Path) -> None:
    # One reply, then the script is exhausted: synthesis fails and the fallback is used.
    script = write_script(tmp_path / "script.json", {"converse": [turn(text="Noted.")]})
    out = tmp_path / "fallback.md"
    result = run_keen(
        "manifest",
        "-i",
        "--dir",
        str(project),
        "--output",
        str(out),
        "--model",
        f"scripted:{script}",
        cwd=tmp_path,
        input="Build a greeter CLI with tests\ndone\n",
    )
    assert result.returncode == 0, result.stderr
    assert "(fallback: the model could not synthesize a vision; built from your messages)" in result.stdout
    text = out.read_text()
    assert "fallback" in text and "Build a greeter CLI with tests" in text
    ran = _run_file(out, project, tmp_path, [complete()])
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_long_discussion_is_cut_to_keep_the_file_runnable(project: Path, tmp_path: Path) -> None:
    long_reply = "word " * 4_000  # 20,000 characters per reply
    script = write_script(
        tmp_path / "script.json",
        {
            "converse": [
                turn(text=long_reply),
                turn(text=long_reply),
                turn(text="Build the thing we discussed."),
            ]
        },
    )
    result = run_keen(
        "manifest",
        "-i",
        "--dir",
        str(project),
        "--model",
        f"scripted:{script}",
        cwd=tmp_path,
        input="first question\nsecond question\ndone\n",
    )
    assert result.returncode == 0, result.stderr
    text = (project / "vision.md").read_text()
    assert len(text) <= 30_000
    assert "characters are left out" in text
    check = run_keen(
        "breathe",
        "-f",
        str(project / "vision.md"),
        "--dry-run",
        "--model",
        "openai:x",
        cwd=tmp_path,
        env={"OPENAI_API_KEY": "k"},
    )
    assert check.returncode == 0, check.stderr

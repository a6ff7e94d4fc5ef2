"""`keen evolve`: validate a project, turn its real findings into an improvement vision, and
run keen's agent on it (150 iterations) with the same runner and live view as `keen breathe`.

`--dry-run` writes the vision to `evolution-vision.md` in the project (replacing the one a
previous dry run wrote) and calls no model.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from rich.text import Text

from keen.cli.common import EXIT_OK, guarded, print_json, settings_or_fail, stderr_console, stdout_console
from keen.validation.report import ValidationReport

EVOLVE_ITERATIONS = 150
DRY_RUN_FILE = "evolution-vision.md"
PLACEHOLDER_VISION = "improve the project from its validation findings"


def evolve_command(
    *,
    directory: Path | None,
    focus: str | None,
    dry_run: bool,
    model: str | None,
    budget: str,
    allow_dirty: bool,
    verbose: bool,
    as_json: bool,
) -> int:
    def body() -> int:
        from keen.agent.evolve import evolution_vision
        from keen.cli.chat import chat_workspace
        from keen.runner.options import make_options
        from keen.validation import validate_project

        settings = settings_or_fail()
        workspace = chat_workspace(directory)
        focus_text = " ".join(focus.split()) if focus else None
        options = None
        if not dry_run:  # every option (and the model's key) is checked before the long validation
            options = make_options(
                settings,
                vision=PLACEHOLDER_VISION,
                directory=workspace,
                model=model,
                max_iterations=EVOLVE_ITERATIONS,
                budget=budget,
                phase="EXPLORE",
                max_depth=10,
                gates="standard",
                web_search=True,
                allow_dirty=allow_dirty,
            )
        progress = stderr_console() if as_json else stdout_console()
        progress.print(
            Text(f"Validating {workspace} (its test suite included)…", style="dim"), soft_wrap=True
        )
        report = asyncio.run(validate_project(workspace))
        progress.print(Text(f"validation: {report.overall}, score {report.score}/100", style="dim"))
        vision = evolution_vision(report, workspace=workspace, focus=focus_text)
        if options is None:
            return _write_dry_run(vision, workspace, report, as_json, _run_options(model, budget))
        return _run(settings, dataclasses.replace(options, vision=vision), verbose, as_json)

    return guarded(body)


def _run_options(model: str | None, budget: str) -> list[str]:
    """The `keen breathe` arguments that run the vision as `keen evolve` would."""
    chosen = ["--max-iterations", str(EVOLVE_ITERATIONS), "--budget", budget]
    return chosen + (["--model", model] if model else [])


def _write_dry_run(
    vision: str, workspace: Path, report: ValidationReport, as_json: bool, run_options: list[str]
) -> int:
    from keen.cli.visionfile import breathe_command_line
    from keen.errors import InputError

    path = workspace / DRY_RUN_FILE
    try:
        path.write_text(vision + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    # The file is an uncommitted change of the workspace, hence --allow-dirty.
    command = breathe_command_line(path, workspace, allow_dirty=True, options=run_options)
    if as_json:
        print_json(
            {
                "dry_run": True,
                "path": str(path),
                "vision": vision,
                "validation": {"overall": report.overall, "score": report.score},
                "run_command": command,
            }
        )
        return EXIT_OK
    console = stdout_console()
    console.print(f"Evolution vision written: {path} (no model was called)", soft_wrap=True)
    console.print(Text(f"Run it with: {command}", style="dim"), soft_wrap=True)
    return EXIT_OK


def _run(settings: Any, options: Any, verbose: bool, as_json: bool) -> int:
    from keen.cli.commands.breathe import run_new_session

    return run_new_session(settings, options, verbose=verbose, as_json=as_json)

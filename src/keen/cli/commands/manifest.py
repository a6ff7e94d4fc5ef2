"""`keen manifest`: write a vision file for `keen breathe -f`.

With a description it is a template around that description and no model is called (no key is
needed). With `--interactive` it is a conversation; `done` writes the file (the vision the model
draws from the chat, with the chat as discussion context) and `exit` leaves without writing.

Without `--output` the file is `vision.md` in `--dir`, or `vision-2.md`, `vision-3.md`, … when
that exists; an explicit `--output` that exists is refused. Nothing is ever overwritten.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from keen.cli.common import EXIT_OK, guarded, settings_or_fail, stdout_console

if TYPE_CHECKING:
    from keen.config import Settings


def manifest_command(
    *,
    description: str | None,
    directory: Path | None,
    output: Path | None,
    interactive: bool,
    model: str | None,
    budget: str,
) -> int:
    def body() -> int:
        from keen.agent.vision import check_vision
        from keen.cli.chat import chat_workspace
        from keen.cli.visionfile import check_output
        from keen.errors import InputError

        settings = settings_or_fail()
        workspace = chat_workspace(directory)
        target = check_output(output) if output is not None else None
        if interactive:
            return _interactive(settings, workspace, target, description, model, budget)
        if description is None:
            raise InputError('give a description (keen manifest "what to build") or use --interactive')
        return _direct(check_vision(description), workspace, target)

    return guarded(body)


def _direct(statement: str, workspace: Path, output: Path | None) -> int:
    from keen.cli.visionfile import write_vision_file

    written = asyncio.run(
        write_vision_file(statement, directory=workspace, output=output, origin="from a description")
    )
    console = stdout_console()
    console.print(f"Vision file written: {written.path}", soft_wrap=True)
    console.print(Text(f"Run it with: {written.run_command}", style="dim"), soft_wrap=True)
    return EXIT_OK


def _interactive(
    settings: Settings,
    workspace: Path,
    output: Path | None,
    description: str | None,
    model: str | None,
    budget: str,
) -> int:
    from keen.agent.budget import parse_usd
    from keen.cli.chat import Chat, ChatConfig
    from keen.llm.factory import check_model_config

    amount = parse_usd(budget)
    spec = model or settings.keen_model
    check_model_config(spec, settings)
    first = description.strip() if description and description.strip() else None
    config = ChatConfig(
        settings, workspace, spec, amount, mode="manifest", output=output, first_message=first
    )
    return Chat(config).run()

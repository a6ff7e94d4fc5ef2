"""`keen converse`: chat about a project with the read-only conversation agent, then write the
idea down (`manifest`) or hand it to keen's agent (`breathe`)."""

from __future__ import annotations

from pathlib import Path

from keen.cli.common import guarded, settings_or_fail


def converse_command(*, directory: Path | None, model: str | None, budget: str) -> int:
    """Everything is checked (folder, model and key, budget) before anything is created."""

    def body() -> int:
        from keen.cli.chat import Chat, ChatConfig, chat_workspace, parse_budget
        from keen.llm.factory import check_model_config

        settings = settings_or_fail()
        workspace = chat_workspace(directory)
        amount = parse_budget(budget)
        spec = model or settings.keen_model
        check_model_config(spec, settings)
        return Chat(ChatConfig(settings, workspace, spec, amount, mode="converse")).run()

    return guarded(body)

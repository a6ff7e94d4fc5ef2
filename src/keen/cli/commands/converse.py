"""`keen converse`: chat about a project with the read-only conversation agent, then write the
idea down (`manifest`) or hand it to keen's agent (`breathe`)."""

from __future__ import annotations

from pathlib import Path

from keen.cli.common import guarded, settings_or_fail


def converse_command(
    *,
    directory: Path | None,
    model: str | None,
    budget: str,
    run_budget: str,
    max_iterations: int,
    max_depth: int,
    gates: str,
    web_search: bool,
) -> int:
    """Everything is checked (folder, model and key, both budgets, the run limits) before anything
    is created, so a typo in a run limit is not found only after a long conversation."""

    def body() -> int:
        from keen.agent.budget import parse_usd
        from keen.cli.chat import Chat, ChatConfig, chat_workspace
        from keen.llm.factory import check_model_config
        from keen.runner.options import check_limits

        settings = settings_or_fail()
        workspace = chat_workspace(directory)
        amount = parse_usd(budget)
        limits = check_limits(
            max_iterations=max_iterations,
            budget=run_budget,
            max_depth=max_depth,
            gates=gates,
            web_search=web_search,
            budget_option="--run-budget",
        )
        spec = model or settings.keen_model
        check_model_config(spec, settings)
        config = ChatConfig(settings, workspace, spec, amount, mode="converse", run_limits=limits)
        return Chat(config).run()

    return guarded(body)

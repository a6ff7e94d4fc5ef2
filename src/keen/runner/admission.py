"""What a server checks before it accepts an agent run: that the model may be used here and is
priced (server modes charge every call), and that the owner's credits cover the worst case of
the run's first model call."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from keen.billing.ledger import Ledger
from keen.billing.money import hold_credits
from keen.billing.records import LedgerConfig
from keen.config import Settings
from keen.errors import InputError, InsufficientCredits
from keen.llm.base import Message, Request, TextPart
from keen.llm.factory import build_model, parse_model_spec
from keen.runner.options import RunOptions
from keen.runner.sessions import dry_run_spec

SERVER_MODE = "server"


def check_server_model(spec: str, settings: Settings) -> None:
    """`scripted:` models play files of the server's disk: only for tests and demos, when the
    operator allows them (`KEEN_ALLOW_SCRIPTED_MODELS=1`)."""
    provider, _name = parse_model_spec(spec)
    if provider == "scripted" and not settings.keen_allow_scripted_models:
        raise InputError(
            "scripted models are not accepted by this server (the operator enables them for tests "
            "and demos with KEEN_ALLOW_SCRIPTED_MODELS=1)"
        )


def first_request(options: RunOptions) -> Request:
    """The request the root agent of `options` sends first (its system prompt, tools and vision)."""
    from keen.agent.prompts.builders import first_message, system_prompt
    from keen.agent.tree import Tree
    from keen.tools import agent_tools

    spec = dry_run_spec(options)
    tools = agent_tools(validation=True, summon=True)
    system = system_prompt(
        spec,
        tool_names=tools.names,
        budget=options.budget,
        max_iterations=options.max_iterations,
        focus=Tree.focus(spec.specialization),
    )
    message = Message(role="user", parts=[TextPart(text=first_message(spec))])
    return Request(system=system, tools=tools.specs(), messages=[message])


async def first_call_worst_case(options: RunOptions, settings: Settings) -> Decimal:
    """USD the first model call of the run may cost at most (an unpriced model is refused here,
    by the pricing policy of server modes)."""
    model = build_model(options.model, settings, web_search=options.web_search, mode=SERVER_MODE)
    try:
        return model.worst_case_cost(first_request(options))
    finally:
        await model.aclose()


async def check_credits(
    session: AsyncSession, config: LedgerConfig, user_id: str, worst_case_usd: Decimal
) -> None:
    """Refuse (402) a run whose first call the account cannot hold (admins' are unlimited)."""
    account = await Ledger(session, config).account(user_id)
    if account.unlimited:
        return
    needed = hold_credits(worst_case_usd, config.markup)
    if account.available < needed:
        raise InsufficientCredits(
            f"the first model call of this run may cost up to {needed} credits, and "
            f"{account.available} are available",
            details={"needed": str(needed), "available": str(account.available)},
        )

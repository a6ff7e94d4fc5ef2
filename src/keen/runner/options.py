"""The options of a run, checked once at the boundary (CLI flags today, API bodies next): every
problem is an `InputError`/`ConfigError` naming its option, and nothing is created here."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from keen.agent.budget import parse_usd
from keen.agent.completion import AcceptAllGate, CompletionGate
from keen.agent.phases import Phase, parse_phase
from keen.agent.spec import DEFAULT_MAX_PARALLEL
from keen.agent.vision import check_vision
from keen.config import Settings
from keen.errors import InputError
from keen.llm.factory import check_model_config

MAX_PARALLEL_CAP = 26  # a parent has at most 26 children
GATE_MODES = ("standard", "strict", "off")
MAX_ITERATIONS_CAP = 10_000


@dataclass
class RunOptions:
    vision: str
    workspace: Path
    model: str
    max_iterations: int = 100
    budget: Decimal = Decimal("50")
    phase: Phase = Phase.EXPLORE
    max_depth: int = 10
    gates: str = "standard"
    web_search: bool = True
    allow_dirty: bool = False
    max_parallel: int = DEFAULT_MAX_PARALLEL

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["workspace"] = str(self.workspace)
        data["budget"] = format(self.budget, "f")
        data["phase"] = self.phase.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOptions:
        return cls(
            vision=data["vision"],
            workspace=Path(data["workspace"]),
            model=data["model"],
            max_iterations=int(data["max_iterations"]),
            budget=Decimal(str(data["budget"])),
            phase=Phase(data["phase"]),
            max_depth=int(data["max_depth"]),
            gates=data["gates"],
            web_search=bool(data["web_search"]),
            allow_dirty=bool(data.get("allow_dirty", False)),
            max_parallel=int(data.get("max_parallel", DEFAULT_MAX_PARALLEL)),
        )


def make_options(
    settings: Settings,
    *,
    vision: str,
    directory: Path | None,
    model: str | None,
    max_iterations: int,
    budget: str | Decimal,
    phase: str,
    max_depth: int,
    gates: str,
    web_search: bool,
    allow_dirty: bool,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
) -> RunOptions:
    """Validate every option (nothing is created here); each problem is an `InputError`/`ConfigError`."""
    workspace = (directory or Path.cwd()).expanduser().resolve()
    if workspace.exists() and not workspace.is_dir():
        raise InputError(f"--dir {workspace} exists and is not a directory")
    text, limits, start_phase = check_run(
        vision,
        max_iterations=max_iterations,
        budget=budget,
        phase=phase,
        max_depth=max_depth,
        gates=gates,
        web_search=web_search,
    )
    if not 1 <= max_parallel <= MAX_PARALLEL_CAP:
        raise InputError(f"--max-parallel must be between 1 and {MAX_PARALLEL_CAP}, not {max_parallel}")
    spec = model or settings.keen_model
    check_model_config(spec, settings)
    return RunOptions(
        vision=text,
        workspace=workspace,
        model=spec,
        phase=start_phase,
        allow_dirty=allow_dirty,
        max_parallel=max_parallel,
        **asdict(limits),
    )


def check_run(
    vision: str,
    *,
    max_iterations: int,
    budget: str | Decimal,
    phase: str,
    max_depth: int,
    gates: str,
    web_search: bool,
) -> tuple[str, RunLimits, Phase]:
    """The vision (shorthands expanded), limits and starting phase of a run, wherever it runs."""
    text = check_vision(vision)
    limits = check_limits(
        max_iterations=max_iterations, budget=budget, max_depth=max_depth, gates=gates, web_search=web_search
    )
    try:
        start_phase = parse_phase(phase)
    except ValueError as exc:
        raise InputError(f"--phase: {exc}") from None
    return text, limits, start_phase


@dataclass(frozen=True)
class RunLimits:
    """The limits of one run, checked once whether they come from `keen breathe` or are kept by
    `keen converse` for the runs its `breathe` word starts."""

    max_iterations: int = 100
    budget: Decimal = Decimal("50")
    max_depth: int = 10
    gates: str = "standard"
    web_search: bool = True


def check_limits(
    *,
    max_iterations: int,
    budget: str | Decimal,
    max_depth: int,
    gates: str,
    web_search: bool,
    budget_option: str = "--budget",
) -> RunLimits:
    """Each out-of-range value is an `InputError` naming its option."""
    if not 1 <= max_iterations <= MAX_ITERATIONS_CAP:
        raise InputError(f"--max-iterations must be between 1 and {MAX_ITERATIONS_CAP}, not {max_iterations}")
    amount = parse_usd(budget, budget_option)
    if not 0 <= max_depth <= 25:
        raise InputError(f"--max-depth must be between 0 and 25, not {max_depth}")
    if gates not in GATE_MODES:
        raise InputError(f"--gates must be one of {', '.join(GATE_MODES)}, not {gates!r}")
    return RunLimits(max_iterations, amount, max_depth, gates, web_search)


def completion_gate(mode: str) -> CompletionGate:
    """The completion gate for a `--gates` mode: validation, or none at all when off."""
    if mode == "off":
        return AcceptAllGate()
    from keen.runner.completion_gate import ValidationGate

    return ValidationGate(mode)  # type: ignore[arg-type]

"""Turning `PROVIDER:NAME` into a model, with every configuration error found up front."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keen.config import Settings
from keen.errors import ConfigError
from keen.llm.base import Model

PROVIDERS = ("anthropic", "openai", "scripted")
# Where each provider's calls go unless its variable names another endpoint.
ENDPOINTS = {
    "anthropic": ("https://api.anthropic.com", "ANTHROPIC_BASE_URL"),
    "openai": ("https://api.openai.com/v1", "OPENAI_BASE_URL"),
}


@dataclass(frozen=True)
class Endpoint:
    url: str
    variable: str  # the setting that points there
    default: bool  # the provider's own endpoint (the variable is not set)

    def describe(self) -> str:
        how = f"the default; set {self.variable} to change it" if self.default else f"from {self.variable}"
        return f"{self.url} ({how})"


def endpoint_of(model: Model) -> Endpoint | None:
    """Where a model's calls go, and which variable chose that (None for the scripted model)."""
    known = ENDPOINTS.get(getattr(model, "provider", ""))
    if known is None:
        return None
    default_url, variable = known
    url = getattr(model, "base_url", None)
    return Endpoint(url=url or default_url, variable=variable, default=not url)


def parse_model_spec(spec: str) -> tuple[str, str]:
    provider, sep, name = spec.strip().partition(":")
    if not sep or not name:
        raise ConfigError(f"model {spec!r} must be PROVIDER:NAME, e.g. anthropic:claude-sonnet-5-5")
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown model provider {provider!r} in {spec!r}; use one of: {', '.join(PROVIDERS)}"
        )
    return provider, name


def check_model_config(spec: str, settings: Settings) -> tuple[str, str]:
    """Validate the spec, its key, its script (which must parse) and the price file, without
    building a client: each problem is a `ConfigError` found before any work starts."""
    provider, name = parse_model_spec(spec)
    if provider == "anthropic" and not _has(settings.anthropic_api_key):
        raise ConfigError(f"model {spec} needs an Anthropic API key: set ANTHROPIC_API_KEY")
    if provider == "openai" and not _has(settings.openai_api_key) and not settings.openai_base_url:
        raise ConfigError(
            f"model {spec} needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)"
        )
    if provider == "scripted":
        if not Path(name).is_file():
            raise ConfigError(f"script file {name} for model {spec} does not exist")
        from keen.llm.scripted import load_script

        load_script(Path(name))  # a script that cannot play fails here, before any work
    if settings.keen_prices_file is not None:
        # The price file is read once per process; reading it now finds a broken one up front.
        from keen.llm.pricing import _load_overrides

        _load_overrides(str(settings.keen_prices_file))
    return provider, name


def build_model(spec: str, settings: Settings, *, web_search: bool = True, mode: str = "local") -> Model:
    """The model for `spec`; its price is resolved here, under `mode`'s policy for unpriced
    models (`pricing.require_price`: server modes refuse them)."""
    provider, name = check_model_config(spec, settings)
    if provider == "scripted":
        from keen.llm.scripted import ScriptedModel

        return ScriptedModel(Path(name), mode=mode)
    if provider == "anthropic":
        from keen.llm.anthropic import AnthropicModel

        assert settings.anthropic_api_key is not None
        return AnthropicModel(
            name,
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            web_search=web_search,
            mode=mode,
        )
    from keen.llm.openai import OpenAIModel

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAIModel(name, api_key=key, base_url=settings.openai_base_url, mode=mode)


def _has(secret: object) -> bool:
    return secret is not None and bool(secret.get_secret_value())  # type: ignore[attr-defined]

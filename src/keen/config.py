"""Settings from the environment (and a `.env` file), with `$KEEN_HOME` paths.

Everything that reads configuration goes through `get_settings()` so that the same rules apply
in the CLI, the server and tests (which point `KEEN_HOME` at a temp dir).
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "anthropic:claude-sonnet-5-5"

# Names of the settings that are secrets: masked in `keen status`, scrubbed from commands.
SECRET_ENV_VARS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "KEEN_DATABASE_URL",
    "KEEN_SECRET_KEY",
    "KEEN_ADMIN_PASSWORD",
    "KEEN_REDIS_URL",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    keen_home: Path = Field(default=Path("~/.keen"), alias="KEEN_HOME")
    keen_model: str = Field(default=DEFAULT_MODEL, alias="KEEN_MODEL")
    anthropic_api_key: SecretStr | None = Field(default=None, alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, alias="ANTHROPIC_BASE_URL")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    keen_database_url: SecretStr | None = Field(default=None, alias="KEEN_DATABASE_URL")
    keen_secret_key: SecretStr | None = Field(default=None, alias="KEEN_SECRET_KEY")
    keen_credit_markup: Decimal = Field(default=Decimal("5.0"), alias="KEEN_CREDIT_MARKUP")
    keen_server: str | None = Field(default=None, alias="KEEN_SERVER")
    keen_admin_email: str | None = Field(default=None, alias="KEEN_ADMIN_EMAIL")
    keen_admin_password: SecretStr | None = Field(default=None, alias="KEEN_ADMIN_PASSWORD")
    keen_cors_origins: str = Field(default="", alias="KEEN_CORS_ORIGINS")
    keen_redis_url: SecretStr | None = Field(default=None, alias="KEEN_REDIS_URL")
    # A JSON file of price overrides: {"<model name>": {"input_mtok": ..., "output_mtok": ...,
    # "cache_read_mtok": ..., "cache_write_mtok": ...}} in USD per million tokens.
    keen_prices_file: Path | None = Field(default=None, alias="KEEN_PRICES_FILE")
    # First retry delay of model calls in seconds (doubles per attempt unless retry-after says).
    keen_retry_base_delay: float = Field(default=1.0, ge=0, alias="KEEN_RETRY_BASE_DELAY")

    @field_validator("keen_home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("keen_credit_markup", mode="after")
    @classmethod
    def _positive_markup(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("KEEN_CREDIT_MARKUP must be greater than 0")
        return value

    @property
    def database_url(self) -> str:
        if self.keen_database_url is not None:
            return self.keen_database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.keen_home / 'keen.db'}"

    def ensure_home(self) -> Path:
        """Create `$KEEN_HOME` (mode 0700) when missing and return it."""
        self.keen_home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.keen_home, 0o700)
        return self.keen_home

    def secret_values(self) -> list[str]:
        """The secret values keen itself holds (so commands never see them)."""
        values = [
            self.anthropic_api_key,
            self.openai_api_key,
            self.keen_database_url,
            self.keen_secret_key,
            self.keen_admin_password,
            self.keen_redis_url,
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]

    def masked(self) -> dict[str, str | None]:
        """The effective configuration with secrets masked, for `keen status --verbose`."""
        out: dict[str, str | None] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            key = field.alias or name.upper()
            if isinstance(value, SecretStr):
                out[key] = mask(value.get_secret_value())
            else:
                out[key] = None if value is None else str(value)
        return out


def mask(secret: str) -> str:
    """Show enough of a secret to recognise it, never enough to use it."""
    if len(secret) <= 8:
        return "****"
    return f"{secret[:4]}…{secret[-2:]}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()

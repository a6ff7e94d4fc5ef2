"""Settings from the environment, `$KEEN_HOME/.env` and `.env` files the person names.

Everything that reads configuration goes through `get_settings()` so that the same rules apply
in the CLI, the server and tests (which point `KEEN_HOME` at a temp dir). A `.env` in the current
directory is never read: it is usually the workspace, which the agent writes, and a key or base URL
planted there would send the person's key to a server of the agent's choosing.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keen.errors import ConfigError

DEFAULT_MODEL = "anthropic:claude-sonnet-5-5"
DEFAULT_KEEN_HOME = "~/.keen"
# `N/period` and `N/Mperiod`: a part of the `limits` notation (the rest is checked by `limits`).
_PLAIN_RATE_LIMIT = re.compile(r"[0-9]+/[0-9]*(second|minute|hour|day|month|year)s?")
# Extra `.env` files the person names, separated by os.pathsep; later files win.
ENV_FILE_VAR = "KEEN_ENV_FILE"
DEFAULT_COMMIT_MAX_FILE_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

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
    # No env_file here: `get_settings()` passes the files that may be read (see `env_files`).
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    keen_home: Path = Field(default=Path(DEFAULT_KEEN_HOME), alias="KEEN_HOME")
    keen_model: str = Field(default=DEFAULT_MODEL, alias="KEEN_MODEL")
    anthropic_api_key: SecretStr | None = Field(default=None, alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, alias="ANTHROPIC_BASE_URL")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    keen_database_url: SecretStr | None = Field(default=None, alias="KEEN_DATABASE_URL")
    keen_secret_key: SecretStr | None = Field(default=None, alias="KEEN_SECRET_KEY")
    keen_credit_markup: Decimal = Field(default=Decimal("5.0"), alias="KEEN_CREDIT_MARKUP")
    # A new credit account's spending limits (credits charged and held per UTC day / month) and
    # auto-recharge settings (off until its owner turns it on); holds expire after the ttl.
    keen_credit_daily_limit: Decimal = Field(default=Decimal(100), alias="KEEN_CREDIT_DAILY_LIMIT")
    keen_credit_monthly_limit: Decimal = Field(default=Decimal(1000), alias="KEEN_CREDIT_MONTHLY_LIMIT")
    keen_auto_recharge_threshold: Decimal = Field(default=Decimal(10), alias="KEEN_AUTO_RECHARGE_THRESHOLD")
    keen_auto_recharge_amount: Decimal = Field(default=Decimal(50), alias="KEEN_AUTO_RECHARGE_AMOUNT")
    keen_auto_recharge_monthly_cap: Decimal = Field(
        default=Decimal(500), alias="KEEN_AUTO_RECHARGE_MONTHLY_CAP"
    )
    keen_credit_hold_ttl_seconds: int = Field(default=900, gt=0, alias="KEEN_CREDIT_HOLD_TTL_SECONDS")
    # How often the server expires stale holds (seconds); `keen admin sweep-holds` does it at once.
    keen_hold_sweep_interval_seconds: int = Field(default=60, gt=0, alias="KEEN_HOLD_SWEEP_INTERVAL_SECONDS")
    keen_payment_provider: Literal["test"] = Field(default="test", alias="KEEN_PAYMENT_PROVIDER")
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
    # How agent commands are contained (see keen.tools.sandbox): `auto` uses bubblewrap where it
    # runs and the best fallback elsewhere; `bwrap` insists on it; `none` is an operator's choice.
    keen_sandbox: Literal["auto", "bwrap", "none"] = Field(default="auto", alias="KEEN_SANDBOX")
    keen_sandbox_network: bool = Field(default=True, alias="KEEN_SANDBOX_NETWORK")
    keen_bwrap: str = Field(default="bwrap", min_length=1, alias="KEEN_BWRAP")
    # keen's own commits leave out files larger than this (they stay in the work tree, reported).
    keen_commit_max_file_bytes: int = Field(
        default=DEFAULT_COMMIT_MAX_FILE_BYTES, gt=0, alias="KEEN_COMMIT_MAX_FILE_BYTES"
    )
    # The server: request bodies over this many bytes are refused (413) before they are read.
    keen_max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0, alias="KEEN_MAX_BODY_BYTES")
    # Rate limits in the `limits` notation (`N/period`, e.g. `1000/hour`, `20/15minutes`): every
    # request per user (or per IP when anonymous), and the auth routes per IP.
    keen_rate_limit: str = Field(default="1000/hour", alias="KEEN_RATE_LIMIT")
    keen_rate_limit_auth: str = Field(default="20/15minutes", alias="KEEN_RATE_LIMIT_AUTH")
    # Prefix of the rate-limit keys in Redis (several deployments may share one Redis).
    keen_rate_limit_prefix: str = Field(default="keen", min_length=1, alias="KEEN_RATE_LIMIT_PREFIX")
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto `keen serve` believes (comma-separated, `*`).
    keen_forwarded_allow_ips: str = Field(default="127.0.0.1", alias="KEEN_FORWARDED_ALLOW_IPS")

    # Agent runs on the server. `scripted:` models are for tests and demos: refused unless `1`.
    keen_allow_scripted_models: bool = Field(default=False, alias="KEEN_ALLOW_SCRIPTED_MODELS")
    # URL schemes a session's `repo_url` may use (comma-separated; scp-like `host:path` is ssh).
    # `file://` and local paths reach the server's own disk: refused unless the operator allows.
    keen_repo_url_schemes: str = Field(default="https", alias="KEEN_REPO_URL_SCHEMES")
    keen_allow_local_repos: bool = Field(default=False, alias="KEEN_ALLOW_LOCAL_REPOS")
    keen_clone_timeout_seconds: int = Field(default=300, gt=0, alias="KEEN_CLONE_TIMEOUT_SECONDS")
    # Root sessions one user may have running at once, and executions per user (`limits` notation).
    keen_max_running_sessions: int = Field(default=3, ge=1, alias="KEEN_MAX_RUNNING_SESSIONS")
    keen_rate_limit_execute: str = Field(default="10/hour", alias="KEEN_RATE_LIMIT_EXECUTE")
    # Where agent runs execute: `inprocess` (in the `keen serve` process) or `distributed`
    # (procrastinate jobs on PostgreSQL, run by `keen worker` processes).
    keen_run_mode: Literal["inprocess", "distributed"] = Field(default="inprocess", alias="KEEN_RUN_MODE")
    # Workers (distributed mode): a worker whose heartbeat is older than the stall time is dead,
    # and the recovery task, run this often, queues its runs again for another worker.
    keen_worker_heartbeat_seconds: float = Field(default=2.0, gt=0, alias="KEEN_WORKER_HEARTBEAT_SECONDS")
    keen_worker_stall_seconds: float = Field(default=6.0, gt=0, alias="KEEN_WORKER_STALL_SECONDS")
    keen_worker_recovery_seconds: int = Field(default=2, ge=1, alias="KEEN_WORKER_RECOVERY_SECONDS")
    # How often an idle worker looks for jobs it was not notified of (a re-queued run sends none).
    keen_worker_poll_seconds: float = Field(default=1.0, gt=0, alias="KEEN_WORKER_POLL_SECONDS")
    # A worker told to stop (SIGTERM) lets its runs reach a step boundary for this long, then
    # hands them back to the queue.
    keen_worker_shutdown_grace_seconds: float = Field(
        default=30.0, gt=0, alias="KEEN_WORKER_SHUTDOWN_GRACE_SECONDS"
    )
    # Seconds between heartbeats of an idle live stream (SSE comment, WebSocket frame).
    keen_stream_heartbeat_seconds: float = Field(default=15.0, gt=0, alias="KEEN_STREAM_HEARTBEAT_SECONDS")

    # Argon2id cost of password hashes (argon2-cffi's defaults, ≈ 0.5 s a hash here); a test suite
    # lowers them. Hashes made with other parameters are redone at the next login.
    keen_argon2_time_cost: int = Field(default=3, ge=1, alias="KEEN_ARGON2_TIME_COST")
    keen_argon2_memory_kib: int = Field(default=65536, ge=8, alias="KEEN_ARGON2_MEMORY_KIB")
    keen_argon2_parallelism: int = Field(default=4, ge=1, alias="KEEN_ARGON2_PARALLELISM")
    # Lockout: this many failed logins of one account (of one IP) within the lockout time lock
    # it for the lockout time.
    keen_login_max_failures: int = Field(default=5, ge=1, alias="KEEN_LOGIN_MAX_FAILURES")
    keen_login_max_failures_per_ip: int = Field(default=20, ge=1, alias="KEEN_LOGIN_MAX_FAILURES_PER_IP")
    keen_login_lockout_seconds: int = Field(default=900, ge=1, alias="KEEN_LOGIN_LOCKOUT_SECONDS")
    # Access tokens last 15 minutes for users and 60 for admins (SPEC 8.1); a test sets a few seconds.
    keen_access_token_ttl_seconds: int | None = Field(
        default=None, ge=1, alias="KEEN_ACCESS_TOKEN_TTL_SECONDS"
    )

    @field_validator("keen_home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("keen_rate_limit", "keen_rate_limit_auth", "keen_rate_limit_execute", mode="after")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        if _PLAIN_RATE_LIMIT.fullmatch(value):
            return value  # what `limits` surely accepts: every process need not import it
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit like `1000/hour` or `20/15minutes`") from None
        return value

    @field_validator("keen_credit_markup", mode="after")
    @classmethod
    def _positive_markup(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("KEEN_CREDIT_MARKUP must be greater than 0")
        return value

    @field_validator(
        "keen_credit_daily_limit",
        "keen_credit_monthly_limit",
        "keen_auto_recharge_threshold",
        "keen_auto_recharge_amount",
        "keen_auto_recharge_monthly_cap",
        mode="after",
    )
    @classmethod
    def _positive_credits(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.000001")):
            raise ValueError("must be a positive amount of credits with at most 6 decimal places")
        return value

    @property
    def local_database(self) -> Path:
        """The SQLite file of local mode (used when KEEN_DATABASE_URL is not set)."""
        return self.keen_home / "keen.db"

    @property
    def database_url(self) -> str:
        if self.keen_database_url is not None:
            return self.keen_database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.local_database}"

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
        found = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        # A password inside a URL leaks on its own too (`echo $PGPASSWORD`, a parsed config).
        passwords = [p for p in map(_url_password, found) if p and len(p) >= MIN_SOUGHT_SECRET]
        return list(dict.fromkeys([*found, *passwords]))

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


# A secret this long is specific enough to be sought inside other text (an environment value, a
# command's output); shorter ones would match ordinary words.
MIN_SOUGHT_SECRET = 8


def _url_password(value: str) -> str | None:
    if "://" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def env_files(environ: dict[str, str] | None = None) -> list[Path]:
    """The `.env` files keen reads: `$KEEN_HOME/.env`, then each file named in `KEEN_ENV_FILE`.

    A named file that does not exist is a configuration error (the person meant it to be read).
    """
    env = dict(os.environ) if environ is None else environ
    home = Path(env.get("KEEN_HOME") or DEFAULT_KEEN_HOME).expanduser()
    named = [Path(p).expanduser() for p in env.get(ENV_FILE_VAR, "").split(os.pathsep) if p.strip()]
    for path in named:
        if not path.is_file():
            raise ConfigError(f"{ENV_FILE_VAR} names {path}, which is not a readable file")
    return [home / ".env", *named]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings(_env_file=tuple(env_files()))  # type: ignore[call-arg]


def reset_settings_cache() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()

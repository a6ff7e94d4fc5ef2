"""Error types. Each carries the CLI exit code and the HTTP status it maps to."""

from __future__ import annotations


class KeenError(Exception):
    """Base of every error keen raises on purpose.

    `exit_code` is what the CLI exits with; `code` is a stable machine-readable name used in
    JSON output and API error envelopes.
    """

    exit_code = 1
    http_status = 500
    code = "error"

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigError(KeenError):
    """Configuration is missing or wrong (a key, a provider, a setting)."""

    exit_code = 2
    http_status = 400
    code = "config_error"


class InputError(KeenError):
    """Input from outside (CLI argument, vision file, request body) is invalid."""

    exit_code = 2
    http_status = 422
    code = "invalid_input"


class NotFoundError(KeenError):
    exit_code = 2
    http_status = 404
    code = "not_found"


class WorkspaceError(KeenError):
    """The workspace cannot be used as asked (dirty tree, not a directory, git failure)."""

    exit_code = 2
    http_status = 409
    code = "workspace_error"


class PathEscapeError(KeenError):
    """A tool path resolves outside the workspace or into git internals."""

    exit_code = 1
    http_status = 400
    code = "path_refused"


class ModelCallError(KeenError):
    """A model call failed. `kind` says how, which decides whether it is retried.

    kinds: rate_limit, overloaded, server_error, timeout, connection (retryable);
    context_length (handled by condensing); bad_request, auth, script_exhausted, invalid_response
    (fatal).
    """

    RETRYABLE = frozenset({"rate_limit", "overloaded", "server_error", "timeout", "connection"})
    code = "model_error"

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, details={"kind": kind, "status": status})
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in self.RETRYABLE


class AuthenticationError(KeenError):
    """No valid credentials: a bad password, token or key (HTTP 401)."""

    exit_code = 2
    http_status = 401
    code = "unauthenticated"


class PermissionDeniedError(KeenError):
    """Authenticated, but not allowed: a missing scope, role or a suspended account (HTTP 403)."""

    exit_code = 2
    http_status = 403
    code = "forbidden"


class ConflictError(KeenError):
    """The request conflicts with the current state (HTTP 409)."""

    exit_code = 2
    http_status = 409
    code = "conflict"


class RateLimitedError(KeenError):
    """Too many requests; `retry_after` says in how many seconds to try again (HTTP 429)."""

    exit_code = 2
    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, details: dict | None = None) -> None:
        super().__init__(message, details={"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after


class UnavailableError(KeenError):
    """The server cannot do this now, as configured (HTTP 503): e.g. no sandbox for agent runs."""

    exit_code = 2
    http_status = 503
    code = "unavailable"


class InsufficientCredits(KeenError):
    """The account cannot cover the next call's worst case (server modes)."""

    exit_code = 1
    http_status = 402
    code = "insufficient_credits"


class SessionEnd(Exception):
    """Ends an agent's session with a final status; `keen.agent.ending` has one per status.

    A tool may raise it once its own result is known: `tool_output` (a successful result) or
    `tool_error` is recorded as that call's result before the session ends.
    """

    status = "failed"

    def __init__(
        self,
        summary: str,
        error: str | None = None,
        *,
        report: dict | None = None,
        tool_output: object = None,
        tool_error: str | None = None,
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.error = error
        self.report = report
        self.tool_output = tool_output
        self.tool_error = tool_error

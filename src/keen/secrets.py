"""keen's secrets kept out of what an agent can run or read: the environment of its commands
is scrubbed (`scrubbed_env`) and every output that reaches the event log or the model is
redacted (`redact`, `redact_value`). A base module: git, tools and validation all use it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from keen.config import MIN_SOUGHT_SECRET, SECRET_ENV_VARS

REDACTED = "[secret redacted by keen]"


def scrubbed_env(
    secret_values: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A copy of the environment without keen's secrets, for anything the agent can run.

    Removed: every name in `SECRET_ENV_VARS`, every `KEEN_*` name (keen's own configuration),
    and every variable whose value is, or contains, one of `secret_values` — a key copied
    under another name must not slip through.
    """
    secrets = [s for s in secret_values if s]
    source = os.environ if environ is None else environ
    return {
        name: value
        for name, value in source.items()
        if name not in SECRET_ENV_VARS and not name.startswith("KEEN_") and not _holds_secret(value, secrets)
    }


def _holds_secret(value: str, secrets: list[str]) -> bool:
    # A long secret found inside a value leaks through it (a password in a connection URL).
    return any(value == s or (len(s) >= MIN_SOUGHT_SECRET and s in value) for s in secrets)


def redact(text: str, secret_values: Iterable[str]) -> str:
    """`text` with every one of keen's secret values replaced by a marker.

    Secrets shorter than `MIN_SOUGHT_SECRET` are left alone: they would match ordinary words.
    Longer secrets go first, so a URL is replaced whole before the password inside it.
    """
    return _redact_text(text, _sought(secret_values))


def redact_value(value: Any, secret_values: Iterable[str]) -> Any:
    """`value` (a tool's JSON-like output) with `redact` applied to every string in it."""
    secrets = _sought(secret_values)
    return _redact_tree(value, secrets) if secrets else value


def _sought(secret_values: Iterable[str]) -> list[str]:
    return sorted({s for s in secret_values if len(s) >= MIN_SOUGHT_SECRET}, key=len, reverse=True)


def _redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_tree(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return _redact_text(value, secrets)
    if isinstance(value, dict):
        return {_redact_tree(k, secrets): _redact_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(v, secrets) for v in value]
    return value

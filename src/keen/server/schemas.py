"""Pydantic models shared by every route: the strict base of request bodies and the error envelope."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base of every request body: unknown fields are refused and nothing is coerced (`false`
    never becomes `0`, `"1"` never becomes `1`), so a client's mistake is an error, not a guess."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorBody(BaseModel):
    type: str
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorEnvelope(BaseModel):
    """The one shape of every error response (SPEC 8.5)."""

    success: Literal[False] = False
    error: ErrorBody
    request_id: str

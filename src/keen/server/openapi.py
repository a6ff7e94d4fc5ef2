"""The OpenAPI schema documents the error envelope on every operation, for the statuses any
route can answer with (malformed JSON, validation, body limit, rate limit, internal error), plus
404 where a path names a resource and 401/403 where credentials are required. Routes added later
are covered the same way, whatever router they come from."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from keen.server.schemas import ErrorEnvelope

ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
EVERY_ROUTE = {
    "400": "Malformed request (e.g. the body is not valid JSON)",
    "413": "The request body is over the size limit",
    "422": "Invalid input; `details.errors` names each field",
    "429": "Rate limited; `Retry-After` says when to retry",
    "500": "Internal error; quote the request id",
}
WITH_PATH_PARAMETERS = {"404": "Not found"}
WITH_SECURITY = {"401": "Not authenticated", "403": "Not allowed"}
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def envelope_response(description: str, status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ENVELOPE_REF}},
    }
    if status == "429":
        response["headers"] = RETRY_AFTER
    return response


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the envelope responses to every operation of `schema` (in place) and return it."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(envelope.pop("$defs", {}))
    components["ErrorEnvelope"] = envelope
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in METHODS:
                _document_operation(operation)
    # FastAPI's own validation-error shape is never sent: every 422 is the envelope.
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def _document_operation(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    wanted = dict(EVERY_ROUTE)
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        wanted.update(WITH_PATH_PARAMETERS)
    if operation.get("security"):
        wanted.update(WITH_SECURITY)
    for status, description in wanted.items():
        # A route's own documentation of a status wins, except FastAPI's default 422.
        if status not in responses or status == "422":
            responses[status] = envelope_response(description, status)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = document_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""The HTTP client of server mode: one place for the server's URL, the Authorization header, the
access token's refresh, timeouts, and the error envelope turned into keen's errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from keen.cli import credentials as store
from keen.cli.credentials import Credentials
from keen.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    InputError,
    InsufficientCredits,
    KeenError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnavailableError,
)

API = "/api/v1"
DEFAULT_SERVER = "http://127.0.0.1:8000"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# A live stream waits this long for a frame (the server sends heartbeats far more often).
STREAM_READ_TIMEOUT = 90.0

ERRORS: dict[int, type[KeenError]] = {
    400: InputError,
    401: AuthenticationError,
    402: InsufficientCredits,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InputError,
    422: InputError,
    429: RateLimitedError,
    503: UnavailableError,
}


class MfaRequired(AuthenticationError):
    """The password was right and the account needs its MFA code."""

    code = "mfa_required"


class Unreachable(ConfigError):
    """No connection to the server (refused, reset, timed out): it is named in the message."""


class ServerError(KeenError):
    """The server failed (5xx) or answered with something that is not keen's API."""

    exit_code = 2
    code = "server_error"


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"the server URL must start with http:// or https://, not {url!r}")
    return url


def error_of(response: httpx.Response) -> KeenError:
    """The KeenError of an error response, with the server's message (and request id on 5xx)."""
    try:
        body = response.json()
        error = body["error"]
        code, message = str(error.get("code", "")), str(error.get("message", ""))
        details = error.get("details") if isinstance(error.get("details"), dict) else None
        request_id = str(body.get("request_id") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, details, request_id = "", response.text[:200], None, ""
    status = response.status_code
    if status == 401 and code == "mfa_required":
        return MfaRequired(message or "this account needs its MFA code", details=details)
    if status == 429:
        wait = response.headers.get("Retry-After")
        message = f"{message} (retry after {wait} s)" if wait else message
    kind = ERRORS.get(status)
    if kind is None:
        where = f" (request id {request_id})" if request_id else ""
        return ServerError(f"the server answered {status}: {message or response.reason_phrase}{where}")
    exc = kind(message or response.reason_phrase, details=details)
    exc.code = code or kind.code
    return exc


class ServerClient:
    """Requests to one keen server, as the stored login's user when there is one. Two processes
    share the login: the one that refreshes first rotates the tokens, the other finds the new
    ones in auth.json (under the same lock) and uses them."""

    def __init__(self, home: Path, server: str, credentials: Credentials | None = None) -> None:
        self.home = home
        self.server = normalize_url(server)
        self.credentials = credentials
        self.http = httpx.Client(base_url=self.server, timeout=TIMEOUT)

    @classmethod
    def from_login(cls, home: Path) -> ServerClient | None:
        credentials = store.load(home)
        if credentials is None:
            return None
        return cls(home, credentials.server, credentials)

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # requests

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        """The JSON of a successful response (None when it has no body); errors raised."""
        response = self._send(method, path, auth=auth, **kwargs)
        if response.is_error:
            raise error_of(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"{self.server}{path} did not answer JSON: is it a keen server?") from None

    def _send(self, method: str, path: str, *, auth: bool, **kwargs: Any) -> httpx.Response:
        if not auth:
            return self._transport(lambda: self.http.request(method, API + path, **kwargs))
        self._fresh_token()
        response = self._transport(
            lambda: self.http.request(method, API + path, headers=self._auth_header(), **kwargs)
        )
        if response.status_code == 401:
            self.refresh(stale=self._token())
            response = self._transport(
                lambda: self.http.request(method, API + path, headers=self._auth_header(), **kwargs)
            )
        return response

    def _transport(self, send: Any) -> httpx.Response:
        try:
            response: httpx.Response = send()
            return response
        except httpx.TransportError as exc:
            raise unreachable(self.server, exc) from None

    # streams

    def stream(self, path: str, after_seq: int) -> Iterator[tuple[str, dict[str, Any], str | None]]:
        """The frames of an SSE stream from `after_seq` on: (event, data, id). Transport errors
        are raised as httpx's (the caller resumes); error responses as KeenErrors."""
        self._fresh_token()
        for attempt in range(2):
            headers = {**self._auth_header(), "Last-Event-ID": str(after_seq), "Accept": "text/event-stream"}
            timeout = httpx.Timeout(TIMEOUT.connect, read=STREAM_READ_TIMEOUT)
            with self.http.stream("GET", API + path, headers=headers, timeout=timeout) as response:
                if response.status_code == 401 and attempt == 0:
                    response.read()
                    self.refresh(stale=self._token())
                    continue
                if response.is_error:
                    response.read()
                    raise error_of(response)
                yield from sse_frames(response)
                return

    # the login

    def _token(self) -> str:
        if self.credentials is None:
            raise AuthenticationError(f"not logged in to {self.server}: run keen login")
        return self.credentials.access_token

    def _auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}"}

    def _fresh_token(self) -> None:
        if self.credentials is not None and self.credentials.expiring():
            self.refresh(stale=self.credentials.access_token)

    def refresh(self, *, stale: str) -> Credentials:
        """New tokens for the stale access token, rotated once across every keen process: under
        the lock, a login another process already refreshed is taken as it is."""
        with store.locked(self.home):
            current = store.load(self.home)
            if current is None or current.server != self.server:
                self.credentials = None
                raise AuthenticationError(f"not logged in to {self.server}: run keen login")
            if current.access_token != stale and not current.expiring():
                self.credentials = current
                return current
            response = self._transport(
                lambda: self.http.post(f"{API}/auth/refresh", json={"refresh_token": current.refresh_token})
            )
            if response.status_code in (401, 403):
                error = error_of(response)
                raise AuthenticationError(
                    f"the login to {self.server} has ended ({error.message}): run keen login"
                )
            if response.is_error:
                raise error_of(response)
            renewed = Credentials.from_tokens(self.server, response.json())
            store.save(self.home, renewed)
            self.credentials = renewed
            return renewed


def unreachable(server: str, exc: Exception) -> Unreachable:
    reason = str(exc) or type(exc).__name__
    return Unreachable(f"cannot reach the keen server at {server}: {reason}")


def sse_frames(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """(event, data, id) of each frame with data; comments (heartbeats) are skipped."""
    event, data, ident = "message", "", None
    for line in response.iter_lines():
        if line == "":
            if data:
                try:
                    parsed = json.loads(data)
                except ValueError:
                    parsed = {"text": data}
                yield event, parsed if isinstance(parsed, dict) else {"value": parsed}, ident
            event, data, ident = "message", "", None
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data = f"{data}\n{value}" if data else value
            elif name == "id":
                ident = value


def require_login(home: Path, what: str) -> ServerClient:
    """The client of the stored login; without one, an error saying `what` needs it."""
    client = ServerClient.from_login(home)
    if client is None:
        raise InputError(f"{what} are kept on a keen server: run keen login --server URL first")
    return client

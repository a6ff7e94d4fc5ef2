"""`keen login` and `keen logout`: the login to a keen server kept in `$KEEN_HOME/auth.json`."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from keen.cli import credentials as store
from keen.cli.common import EXIT_BAD_INPUT, EXIT_OK, guarded, settings_or_fail, stderr_console, stdout_console
from keen.errors import AuthenticationError, InputError, KeenError


def login_command(*, server: str | None, email: str | None, password_stdin: bool) -> int:
    """Sign in; with `--password-stdin` the first line of stdin is the password and the next one
    the MFA code (read only when the server asks for it)."""
    from keen.cli.client import DEFAULT_SERVER, MfaRequired, ServerClient, normalize_url
    from keen.cli.credentials import Credentials

    def body() -> int:
        settings = settings_or_fail()
        home = settings.keen_home
        previous = store.load(home)
        url = normalize_url(
            server or settings.keen_server or (previous.server if previous else DEFAULT_SERVER)
        )
        lines = iter(sys.stdin.read().splitlines()) if password_stdin else None
        address = email or _ask(f"email for {url}: ", lines, secret=False)
        password = _ask("password: ", lines, secret=True)
        if not address or not password:
            raise InputError("give an email and a password")
        with ServerClient(home, url) as client:
            fields: dict[str, Any] = {"email": address, "password": password}
            try:
                tokens = client.request("POST", "/auth/login", auth=False, json=fields)
            except MfaRequired:
                code = _ask("MFA code: ", lines, secret=True)
                if not code:
                    raise InputError("this account needs its MFA code") from None
                tokens = _signed_in(client, {**fields, "mfa_code": code.strip()})
            except AuthenticationError as exc:
                raise AuthenticationError(f"login to {url} refused: {exc.message}") from None
        credentials = Credentials.from_tokens(url, tokens)
        store.save(home, credentials)
        user = credentials.user
        stdout_console().print(
            f"logged in to {url} as {user.get('email', address)} ({user.get('role', '?')})", soft_wrap=True
        )
        return EXIT_OK

    return guarded(body)


def _signed_in(client: Any, fields: dict[str, Any]) -> Any:
    try:
        return client.request("POST", "/auth/login", auth=False, json=fields)
    except AuthenticationError as exc:
        raise AuthenticationError(f"login to {client.server} refused: {exc.message}") from None


def _ask(prompt: str, lines: Any, *, secret: bool) -> str:
    """A line from stdin (`--password-stdin`), or asked on the terminal (without echo if secret)."""
    if lines is not None:
        return str(next(lines, ""))
    if secret:
        return getpass.getpass(prompt)
    return input(prompt).strip()


def logout_command() -> int:
    """Revoke the refresh token on the server, then forget the login (even when the server could
    not be told: then the exit code is 2 and the message says so)."""
    from keen.cli.client import ServerClient

    def body() -> int:
        settings = settings_or_fail()
        home = settings.keen_home
        client = ServerClient.from_login(home)
        if client is None:
            stdout_console().print("not logged in")
            return EXIT_OK
        problem: KeenError | None = None
        with client:
            try:
                client.post("/auth/logout")
            except AuthenticationError:
                pass  # the login had already ended
            except KeenError as exc:
                problem = exc
        store.delete(home)
        if problem is not None:
            stderr_console().print(
                f"[bold red]error:[/] logged out here, but {client.server} was not told: {problem.message}",
                soft_wrap=True,
            )
            return EXIT_BAD_INPUT
        stdout_console().print(f"logged out of {client.server}", soft_wrap=True)
        return EXIT_OK

    return guarded(body)

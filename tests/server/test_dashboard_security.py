"""The dashboard's security over HTTP, without a browser: forms refused without their CSRF
token, the session cookie's flags (HttpOnly, SameSite=Lax, Secure over TLS), a CSP without inline
scripts on its pages, cached static files, pages that need a sign-in, and no page in the OpenAPI
schema."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from fastapi import FastAPI

from authkit import PASSWORD, http_sign_up

ClientFactory = Callable[..., httpx.AsyncClient]


async def sign_in_form(client: httpx.AsyncClient, email: str) -> httpx.Response:
    """The login form posted as a browser posts it: with the CSRF token its page set."""
    page = await client.get("/login")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None
    return await client.post("/login", data={"csrf": match.group(1), "email": email, "password": PASSWORD})


async def test_a_form_without_its_csrf_token_is_refused(client: httpx.AsyncClient) -> None:
    await http_sign_up(client, "ada@example.org")
    refused = await client.post("/login", data={"email": "ada@example.org", "password": PASSWORD})
    assert refused.status_code == 403 and "CSRF" in refused.text
    page = await client.get("/login")
    forged = await client.post(
        "/login", data={"csrf": "not-the-cookie", "email": "ada@example.org", "password": PASSWORD}
    )
    assert page.status_code == 200 and forged.status_code == 403
    assert "keen_session" not in forged.headers.get("set-cookie", "")


async def test_the_session_cookie_is_httponly_lax_and_secure_only_over_tls(
    app: FastAPI, client_for: ClientFactory
) -> None:
    for base_url, secure in (("http://testserver", False), ("https://testserver", True)):
        async with client_for(app, base_url=base_url) as client:
            await http_sign_up(client, f"ada-{int(secure)}@example.org")
            signed = await sign_in_form(client, f"ada-{int(secure)}@example.org")
            assert signed.status_code == 303 and signed.headers["location"] == "/sessions"
            cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith("keen_session="))
            assert "HttpOnly" in cookie and "SameSite=lax" in cookie
            assert ("Secure" in cookie) is secure
            listed = await client.get("/sessions")
            assert listed.status_code == 200 and "Sessions" in listed.text


async def test_pages_have_a_csp_without_inline_scripts_and_no_inline_script(
    client: httpx.AsyncClient,
) -> None:
    login = await client.get("/login")
    csp = login.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)", login.text)
    assert not re.search(r"<[^>]+\son[a-z]+=", login.text)  # no inline event handlers


async def test_static_files_are_cached_and_pages_are_not(client: httpx.AsyncClient) -> None:
    css = await client.get("/static/app.css")
    assert css.status_code == 200 and "max-age=86400" in css.headers["cache-control"]
    licence = await client.get("/static/vendor/d3-hierarchy.LICENSE")
    assert licence.status_code == 200 and "Mike Bostock" in licence.text
    assert (await client.get("/login")).headers["cache-control"] == "no-store"


async def test_pages_need_a_sign_in_and_are_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    for path in ("/sessions", "/sessions/new", "/credits", "/account", "/admin/users", "/sessions/abc/live"):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/login", path
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert all(p.startswith(("/api/", "/health")) for p in paths), sorted(paths)

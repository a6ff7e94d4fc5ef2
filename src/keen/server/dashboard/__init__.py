"""The web dashboard `keen serve` serves at `/` (SPEC 8.6): server-rendered pages, static files
from this package (vendored, no build step), a cookie sign-in for the browser."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from keen.server.dashboard.render import STATIC, redirect
from keen.server.dashboard.session import SESSION_COOKIE, SignInRequired

STATIC_MAX_AGE = 60 * 60 * 24  # URLs carry the version (`?v=`), so a new release is fetched anew


class CachedStatic(StaticFiles):
    """Static files with a Cache-Control header."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE}"
        return response


async def sign_in_required(request: Request, exc: Exception) -> Response:
    response = redirect("/login")
    if request.cookies.get(SESSION_COOKIE):
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def install_dashboard(app: FastAPI) -> None:
    from keen.server.dashboard import account, admin, credits, files, pages

    app.mount("/static", CachedStatic(directory=STATIC), name="static")
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(admin.NotAnAdmin, admin.not_an_admin)
    for module in (pages, files, credits, account, admin):
        app.include_router(module.router)

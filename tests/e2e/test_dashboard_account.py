"""The account page in a real browser against a real `keen serve`: an API key shown once, used
and revoked; MFA turned on by scanning the QR code's secret, then asked for at the next login."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from authkit import API
from dashkit import Browsing, User, needs_chromium
from keen.auth.mfa import totp_code
from runkit import RUN_ENV
from serverkit import Server

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("dash-account-home"), RUN_ENV)
    running.wait_live()
    yield running
    running.stop()


def profile_status(server: Server, key: str) -> int:
    return httpx.get(f"{server.url}{API}/profile", headers={"Authorization": f"ApiKey {key}"}).status_code


def test_an_api_key_is_shown_once_works_and_is_revoked(browser: Any, server: Server) -> None:
    ada = User(server.url, "ada@example.org")
    tab = Browsing(browser, server.url)
    tab.sign_in(ada)
    page = tab.page
    page.goto("/account")
    page.fill("#create-key input[name=name]", "ci")
    page.click("#create-key button[type=submit]")
    key = page.text_content("#new-key") or ""
    assert key.startswith("keen_")
    assert profile_status(server, key) == 200
    page.goto("/account")
    assert page.locator("#new-key").count() == 0 and key not in page.content()
    row = page.locator("#keys tr[data-name=ci]")
    row.locator("button").click()
    page.wait_for_url("**/account")
    expect(page.locator("#keys tr[data-name=ci]")).to_have_attribute("data-revoked", "true")
    assert profile_status(server, key) == 401
    tab.finish("api-keys")


def test_mfa_is_enrolled_from_the_qr_page_and_asked_for_at_the_next_login(
    browser: Any, server: Server
) -> None:
    grace = User(server.url, "grace@example.org")
    tab = Browsing(browser, server.url)
    tab.sign_in(grace)
    page = tab.page
    page.goto("/account")
    assert page.get_attribute("#mfa-state", "data-enabled") == "false"
    page.click("#mfa-setup button")
    qr = page.locator("#mfa-qr")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.naturalWidth") > 100  # an image, decoded by the browser
    secret = page.text_content("#mfa-secret") or ""
    page.fill("#mfa-enable input[name=code]", totp_code(secret, datetime.now(UTC)))
    page.click("#mfa-enable button")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    recovery = page.locator("#recovery-codes li").first.inner_text().strip()
    tab.finish("mfa-enrolled")
    # The next sign-in asks for a code: a wrong one is refused, a recovery code signs in.
    again = Browsing(browser, server.url)
    again.page.goto("/login")
    again.page.fill("input[name=email]", grace.email)
    again.page.fill("input[name=password]", "Correct-horse-9")
    again.page.click("button[type=submit]")
    again.page.wait_for_url("**/login/mfa")
    again.page.fill("input[name=code]", "000000")
    again.page.click("button[type=submit]")
    assert "wrong" in again.page.inner_text(".error")
    again.page.fill("input[name=code]", recovery)
    again.page.click("button[type=submit]")
    again.page.wait_for_url("**/sessions")
    again.finish("mfa-signed-in", expected_errors=("401",))  # the wrong code's answer

"""The dashboard's credits and admin pages in a real browser against a real `keen serve`: a
purchase through the test provider, and an admin who suspends a user (logged out at their next
request), grants credits, reads the analytics and sees the audit chain verified."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from authkit import PASSWORD
from dashkit import PHONE, Browsing, User, needs_chromium
from runkit import RUN_ENV, Ledger
from serverkit import Server

pytestmark = [pytest.mark.slow, needs_chromium]
ADMIN_EMAIL = "root@example.org"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dash-admin-home")


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    env = {**RUN_ENV, "KEEN_ADMIN_EMAIL": ADMIN_EMAIL, "KEEN_ADMIN_PASSWORD": PASSWORD}
    running = Server(home, env)
    running.wait_live()
    yield running
    running.stop()


class Admin(User):
    def __init__(self, email: str) -> None:
        self.email = email
        self.mfa_secret = None


def test_a_purchase_with_the_test_provider_updates_the_balance_and_the_transactions(
    browser: Any, server: Server, home: Path
) -> None:
    ada = User(server.url, "ada@example.org")
    tab = Browsing(browser, server.url, viewport=PHONE)
    tab.sign_in(ada)
    page = tab.page
    page.goto("/credits")
    before = Decimal(page.text_content("#balance") or "")
    page.fill("#purchase input[name=amount]", "25")
    page.click("#purchase button[type=submit]")
    page.wait_for_url("**/credits")
    assert Decimal(page.text_content("#balance") or "") == before + 25 == Ledger(home).balance(ada.id)
    expect(page.locator("#transactions tr[data-type=purchase]")).to_have_count(1)
    assert "25" in page.inner_text("#transactions tr[data-type=purchase]")
    # Settings are kept.
    page.fill("#settings input[name=daily_limit]", "42")
    page.click("#settings button[type=submit]")
    page.wait_for_url("**/credits")
    assert Decimal(page.input_value("#settings input[name=daily_limit]")) == 42
    tab.finish("credits")


def test_an_admin_suspends_a_user_who_is_signed_out_at_their_next_request_and_sees_the_chain_verified(
    browser: Any, server: Server, home: Path
) -> None:
    grace = User(server.url, "grace@example.org")
    hers = Browsing(browser, server.url)
    hers.sign_in(grace)
    assert hers.page.goto("/admin/users") is not None
    assert "Not found" in hers.page.inner_text("h1") and ADMIN_EMAIL not in hers.page.content()
    tab = Browsing(browser, server.url)
    tab.sign_in(Admin(ADMIN_EMAIL))
    page = tab.page
    page.goto("/admin/users")
    row = page.locator("#users tr[data-email='grace@example.org']")
    row.locator("form.grant input[name=amount]").fill("7")
    row.locator("form.grant button").click()
    page.wait_for_url("**/admin/users")
    assert Ledger(home).balance(grace.id) == 7
    row.locator("select[name=status]").select_option("suspended")
    row.locator("form.change button").click()
    page.wait_for_url("**/admin/users")
    assert row.locator(".badge").get_attribute("data-status") == "suspended"
    hers.page.goto("/sessions")
    assert hers.page.url.endswith("/login")
    assert all(c["name"] != "keen_session" for c in hers.context.cookies())
    hers.finish("suspended-user-signed-out", expected_errors=("404",))  # the 404 page it was shown
    page.goto("/admin/analytics")
    assert "1 suspended" in page.inner_text("#figures")
    page.goto("/admin/audit")
    assert page.get_attribute("#chain", "data-intact") == "true"
    assert "Chain verified" in page.inner_text("#chain")
    assert page.locator("#audit tbody tr", has_text="admin.user.changed").count() >= 1
    tab.finish("audit-verified")

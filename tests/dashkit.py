"""What the dashboard's browser tests share: Debian's chromium, a `keen serve` that runs scripted
models, users (one with MFA), signing in through the login page, a page that fails on console
errors, and the screenshot each test leaves under tests/artifacts/."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from authkit import API, PASSWORD
from keen.auth.mfa import totp_code
from runkit import grant, sign_up

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no browser: {CHROMIUM} is missing (apt-get install -y chromium)"
)


def grant_credits(home: Path, user_id: str, amount: str) -> None:
    """`runkit.grant` in a thread of its own (Playwright's sync API keeps an event loop running
    in this one)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(grant, home, user_id, amount).result()


class User:
    def __init__(self, base_url: str, email: str) -> None:
        self.email = email
        self.headers, self.id = sign_up(base_url, email)
        self.mfa_secret: str | None = None
        self.mfa_step = -1  # the last TOTP step this user signed in with (the server accepts each once)

    def next_code(self) -> str:
        """A TOTP code the server has not seen: the current step's, or the next one's (within the
        one-step drift it allows) when this step's was used by an earlier sign-in."""
        assert self.mfa_secret is not None
        step = max(int(time.time()) // TOTP_STEP, self.mfa_step + 1)
        while step > int(time.time()) // TOTP_STEP + 1:
            time.sleep(0.5)
        self.mfa_step = step
        return totp_code(self.mfa_secret, datetime.fromtimestamp(step * TOTP_STEP, UTC))


TOTP_STEP = 30  # seconds


def enable_mfa(base_url: str, user: User) -> None:
    """MFA on, enabled with the previous step's code (so the current one still signs in)."""
    with httpx.Client(base_url=base_url, headers=user.headers, timeout=30) as client:
        setup = client.post(f"{API}/mfa/setup").json()
        earlier = datetime.now(UTC) - timedelta(seconds=30)
        enabled = client.post(f"{API}/mfa/enable", json={"code": totp_code(setup["secret"], earlier)})
        assert enabled.status_code == 200, enabled.text
    user.mfa_secret = setup["secret"]


class Browsing:
    """One browser context (its own cookies) with the console watched."""

    def __init__(self, browser: Any, base_url: str, viewport: dict[str, int] = DESKTOP) -> None:
        self.base_url = base_url
        self.context = browser.new_context(base_url=base_url, viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def sign_in(self, user: User) -> None:
        page = self.page
        page.goto("/login")
        page.fill("input[name=email]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        if user.mfa_secret is not None:
            page.wait_for_url("**/login/mfa")
            page.fill("input[name=code]", user.next_code())
            page.click("button[type=submit]")
        page.wait_for_url("**/sessions")

    def sign_in_by_keyboard(self, user: User) -> None:
        """Sign in with the keyboard alone: the email field has the focus, Tab, Enter."""
        page = self.page
        page.goto("/login")
        # The page gives the email field the focus; on a busy machine that may land just after load.
        page.wait_for_function("() => document.activeElement && document.activeElement.name === 'email'")
        page.keyboard.type(user.email)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url("**/sessions")

    def finish(self, name: str, *, expected_errors: tuple[str, ...] = ()) -> None:
        """The screenshot of the final page, then: no console error but those expected."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        unexpected = [e for e in self.errors if not any(x in e for x in expected_errors)]
        self.context.close()
        assert not unexpected, unexpected


def wait_until(predicate: Any, timeout: float = 30, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("the condition did not hold in time")

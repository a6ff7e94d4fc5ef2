"""The dashboard's session pages in a real browser against a real `keen serve`: sign in with
MFA, start a scripted session whose tree grows to four agents live, cancel a running one, and a
second user shown the 404 page for the first one's session."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from dashkit import PHONE, Browsing, User, enable_mfa, grant_credits, needs_chromium
from helpers import call, complete, summon, turn, write_script
from runkit import AGENTS, RUN_ENV, Ledger, events_of, execute, session_of, wait_finished
from serverkit import Server

pytestmark = [pytest.mark.slow, needs_chromium]
MARKUP = Decimal(5)  # the default KEEN_CREDIT_MARKUP


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dash-home")


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    running = Server(home, RUN_ENV)
    running.wait_live()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def ada(server: Server, home: Path) -> User:
    user = User(server.url, "ada@example.org")
    grant_credits(home, user.id, "50")
    return user


def tree_script(path: Path) -> Path:
    """The root summons summon-A (which summons summon-A-A) and then summon-B."""
    return write_script(
        path,
        {
            "main": [
                turn(summon("write a.txt with a grandchild's help", "general")),
                turn(summon("write b.txt", "general")),
                complete("both children merged"),
            ],
            "summon-A": [turn(summon("write a.txt", "general")), complete("a.txt via summon-A-A")],
            "summon-A-A": [
                turn(call("write_files", files=[{"path": "a.txt", "content": "from the grandchild\n"}])),
                turn(call("run_command", command="sleep 1 && echo grandchild-ran")),
                complete("a.txt written"),
            ],
            "summon-B": [
                turn(call("run_command", command="sleep 2 && echo b > b.txt")),
                complete("b.txt written"),
            ],
        },
    )


def node_branches(page: Any) -> list[str]:
    branches: list[str] = page.eval_on_selector_all("#tree g.node", "els => els.map(e => e.dataset.branch)")
    return branches


def test_sign_in_with_mfa_start_a_session_and_watch_its_tree_grow_to_four_agents_live(
    browser: Any, server: Server, home: Path, ada: User, tmp_path: Path
) -> None:
    enable_mfa(server.url, ada)
    tab = Browsing(browser, server.url)
    tab.sign_in(ada)
    page = tab.page
    page.goto("/sessions/new")
    page.fill("textarea[name=vision]", "two children and a grandchild")
    page.fill("input[name=model]", f"scripted:{tree_script(tmp_path / 'tree.json')}")
    page.fill("input[name=budget]", "2")
    assert page.text_content("#estimate-credits") == "10.00"  # 2 USD × the markup of 5
    page.select_option("select[name=gates]", "off")
    page.uncheck("input[name=web_search]")
    page.click("#new-session button[type=submit]")
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f]{32}$"))
    session_id = page.url.rsplit("/", 1)[1]
    # Four agents on the page while the root still runs (summon-B sleeps 2 s): the tree grew live.
    expect(page.locator("#tree g.node")).to_have_count(4, timeout=30_000)
    assert page.get_attribute("#status", "data-status") == "running"
    assert sorted(node_branches(page)) == ["main", "summon-A", "summon-A-A", "summon-B"]
    # The stream drops and the page resumes after the last seq it showed.
    page.evaluate("() => window.keenLive.reconnect()")
    expect(page.locator("#status")).to_have_attribute("data-status", "completed", timeout=30_000)
    # The grandchild's tool calls are in the timeline; one expands to its input and output.
    page.select_option("#filter-agent", label="summon-A-A")
    calls = page.locator("#timeline li.tool:visible")
    assert calls.count() >= 2
    command = calls.filter(has_text="run_command")
    command.locator("summary").click()
    assert "sleep 1 && echo grandchild-ran" in command.inner_text()
    expect(command.locator(".output pre")).to_contain_text("grandchild-ran")
    page.select_option("#filter-agent", value="")
    # The cost shown is what the ledger charged.
    expect(page.locator("#tree g.node.completed")).to_have_count(4, timeout=10_000)
    charged = Ledger(home).usage(ada.id)
    assert charged > 0
    assert Decimal(page.text_content("#credits") or "") == charged
    assert Decimal(page.text_content("#cost-usd") or "") * MARKUP == charged
    assert Decimal(session_of(server.url, ada.headers, session_id)["totals"]["credits"]) == charged
    seqs = page.eval_on_selector_all("#timeline li", "els => els.map(e => Number(e.dataset.seq))")
    assert seqs == [e["seq"] for e in events_of(server.url, ada.headers, session_id)]  # each once, none lost
    # The sessions list shows it with its badge.
    page.goto("/sessions")
    assert page.get_attribute(f"a[href='/sessions/{session_id}'] ~ .badge", "data-status") == "completed"
    page.goto(f"/sessions/{session_id}")
    expect(page.locator("#tree g.node")).to_have_count(4)
    tab.finish("session-tree")


def test_cancel_from_the_page_shows_cancelled_within_3_seconds(
    browser: Any, server: Server, ada: User, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "slow.json", [turn(call("run_command", command="sleep 60")), complete()])
    started = execute(server.url, ada.headers, script)
    other = execute(server.url, ada.headers, script)
    tab = Browsing(browser, server.url, viewport=PHONE)
    tab.sign_in(ada)
    page = tab.page
    # The list's badges follow their sessions live: one cancelled elsewhere turns `cancelled`.
    badge = page.locator(f".badge[data-session='{other['id']}']")
    expect(badge).to_have_attribute("data-status", "running", timeout=10_000)
    cancelled = httpx.post(
        f"{server.url}{AGENTS}/sessions/{other['id']}/cancel", headers=ada.headers, timeout=30
    )
    assert cancelled.status_code == 202, cancelled.text
    expect(badge).to_have_attribute("data-status", "cancelled", timeout=6_000)
    page.goto(f"/sessions/{started['id']}")
    page.wait_for_selector("#timeline li[data-type='tool.started']", timeout=30_000)
    page.click("#cancel-form button")
    expect(page.locator("#status")).to_have_attribute("data-status", "cancelled", timeout=3_000)
    assert wait_finished(server.url, ada.headers, started["id"], timeout=10)["status"] == "cancelled"
    assert page.is_hidden("#cancel-form")
    tab.finish("session-cancelled")


def test_a_second_user_gets_the_404_page_for_the_first_users_session(
    browser: Any, server: Server, ada: User, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "quick.json", [complete("nothing to do")])
    mine = execute(server.url, ada.headers, script)
    wait_finished(server.url, ada.headers, mine["id"])
    grace = User(server.url, "grace@example.org")
    tab = Browsing(browser, server.url)
    tab.sign_in_by_keyboard(grace)
    page = tab.page
    page.keyboard.press("Tab")  # the first link of the page, reached by keyboard
    assert page.evaluate("() => document.activeElement.textContent") == "keen"
    assert page.locator(f"a[href='/sessions/{mine['id']}']").count() == 0
    for path in (f"/sessions/{mine['id']}", f"/sessions/{mine['id']}/tree.json"):
        response = page.goto(path)
        assert response is not None and response.status == 404
    page.goto(f"/sessions/{mine['id']}")
    assert "Not found" in page.inner_text("h1")
    assert mine["vision"] not in page.content()
    tab.finish("session-not-found", expected_errors=("404",))


def test_the_workspace_files_a_file_and_the_diff_against_the_start_commit(
    browser: Any, server: Server, ada: User, tmp_path: Path
) -> None:
    files = [{"path": "src/hello.py", "content": "print('hello')\n"}]
    script = write_script(
        tmp_path / "files.json", [turn(call("write_files", files=files)), complete("written")]
    )
    done = execute(server.url, ada.headers, script)
    wait_finished(server.url, ada.headers, done["id"])
    tab = Browsing(browser, server.url, viewport=PHONE)
    tab.sign_in(ada)
    page = tab.page
    page.goto(f"/sessions/{done['id']}")
    page.click("text=Workspace files")
    page.click("#files a:text-is('src/hello.py')")
    assert page.text_content("#file-text") == "print('hello')\n"
    page.click("text=Changes")
    assert page.locator("#diff .file", has_text="src/hello.py").count() >= 1
    assert page.locator("#diff .add", has_text="print('hello')").count() == 1
    response = page.goto(f"/sessions/{done['id']}/files/src/missing.py")
    assert response is not None and response.status == 404 and "Not found" in page.inner_text("h1")
    page.goto(f"/sessions/{done['id']}/changes")
    tab.finish("session-diff", expected_errors=("404",))

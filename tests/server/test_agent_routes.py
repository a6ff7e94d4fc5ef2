"""`/api/v1/agents` in-process: what `execute` admits and refuses (scripted models, credits,
running sessions, the hourly limit, repo URLs, the sandbox), a run that runs out of credits, an
admin's run, the session, tree, events, files, diff and archive routes, and the bounded queue
of a WebSocket client that reads too slowly."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from authkit import PASSWORD, bearer, http_login, http_sign_up
from helpers import call, complete, git, turn, write_script
from keen.auth import Principal, ensure_first_admin
from keen.auth.scopes import USER_SCOPES
from keen.config import DEFAULT_MODEL
from keen.llm.base import Usage
from keen.llm.pricing import require_price
from keen.server import ws
from keen.store.models import CreditHoldRow, CreditTransactionRow
from ledgerkit import grant
from runkit import AGENTS, FAST, RUN_ENV

ADMIN = "root@example.org"
# What one call of a script costs in credits: its default usage (1000 input, 200 output tokens)
# of the default model, × the markup.
PER_CALL = (
    require_price(DEFAULT_MODEL.partition(":")[2], None).cost(Usage(input_tokens=1000, output_tokens=200)) * 5
).quantize(Decimal("0.000001"))
Api = tuple[httpx.AsyncClient, FastAPI]


@pytest.fixture
async def make_api(
    settings_for: Callable[..., Any],
) -> AsyncIterator[Callable[..., Any]]:
    """Apps over this test's home with their lifespan running (runs end or are suspended with it)."""
    from keen.server import create_app

    stack: list[Any] = []

    async def make(**overrides: Any) -> Api:
        app = create_app(
            settings_for(
                **{**RUN_ENV, "KEEN_ADMIN_EMAIL": ADMIN, "KEEN_ADMIN_PASSWORD": PASSWORD, **overrides}
            )
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        await ensure_first_admin(app.state.settings, app.state.db)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        stack.append((lifespan, client))
        return client, app

    yield make
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def api(make_api: Callable[..., Any]) -> Api:
    result: Api = await make_api()
    return result


async def user(api: Api, email: str, credits: str | None = "10") -> tuple[dict[str, str], str]:
    client, app = api
    login = await http_sign_up(client, email)
    if credits is not None:
        await grant(app.state.db, login["user"]["id"], credits)
    return bearer(login["access_token"]), login["user"]["id"]


async def execute(api: Api, headers: dict[str, str], script: Path | None, **body: Any) -> httpx.Response:
    options = {**FAST, **body.pop("options", {})}
    if script is not None:
        options["model"] = f"scripted:{script}"
    payload = {"vision": "do what the script says", "options": options, **body}
    return await api[0].post(f"{AGENTS}/execute", json=payload, headers=headers)


async def finished(api: Api, headers: dict[str, str], session_id: str, timeout: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            body: dict[str, Any] = (
                await api[0].get(f"{AGENTS}/sessions/{session_id}", headers=headers)
            ).json()
            if body["status"] not in ("created", "running"):
                return body
            await asyncio.sleep(0.05)


async def events(
    api: Api, headers: dict[str, str], session_id: str, after_seq: int = 0
) -> list[dict[str, Any]]:
    response = await api[0].get(
        f"{AGENTS}/sessions/{session_id}/events", params={"after_seq": after_seq}, headers=headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def quick(tmp_path: Path, name: str = "quick.json", *turns: dict[str, Any]) -> Path:
    return write_script(tmp_path / name, [*turns, complete()])


async def test_scripted_models_are_refused_unless_the_operator_allows_them(
    make_api: Callable[..., Any], tmp_path: Path
) -> None:
    api = await make_api(KEEN_ALLOW_SCRIPTED_MODELS="0")
    headers, _ = await user(api, "a@example.org")
    refused = await execute(api, headers, quick(tmp_path))
    assert refused.status_code == 422 and "KEEN_ALLOW_SCRIPTED_MODELS" in refused.json()["error"]["message"]
    unpriced = write_script(tmp_path / "unpriced.json", [complete()], model="no-such-model-anywhere")
    api = await make_api()
    headers, _ = await user(api, "b@example.org")
    response = await execute(api, headers, unpriced)
    assert response.status_code == 400 and "no price is known" in response.json()["error"]["message"]


async def test_402_when_the_credits_cannot_cover_the_first_call_and_nothing_is_made(
    api: Api, tmp_path: Path, keen_home: Path
) -> None:
    headers, user_id = await user(api, "poor@example.org", credits=None)
    response = await execute(api, headers, quick(tmp_path))
    assert response.status_code == 402, response.text
    assert response.json()["error"]["code"] == "insufficient_credits"
    assert (await api[0].get(f"{AGENTS}/sessions", headers=headers)).json()["total"] == 0
    assert not (keen_home / "workspaces" / user_id).exists() or not any(
        (keen_home / "workspaces" / user_id).iterdir()
    )


async def test_a_run_ends_insufficient_credits_before_the_call_it_cannot_pay_for(
    api: Api, tmp_path: Path
) -> None:
    headers, user_id = await user(api, "thrifty@example.org", credits=str(PER_CALL * Decimal("1.5")))
    script = quick(
        tmp_path,
        "three.json",
        turn(call("continue_work", next_action="one")),
        turn(call("continue_work", next_action="two")),
    )
    started = (await execute(api, headers, script)).json()
    end = await finished(api, headers, started["id"])
    assert end["status"] == "insufficient_credits", end
    log = await events(api, headers, started["id"])
    types = [e["type"] for e in log]
    assert types.count("model.responded") == 1 and types.count("credits.reserved") == 1
    assert types[-1] == "session.finished" and "credits" in log[-1]["data"]["summary"]
    async with api[1].state.db.session() as s:
        usage = (
            await s.scalars(
                select(CreditTransactionRow.amount).where(
                    CreditTransactionRow.user_id == user_id, CreditTransactionRow.type == "usage"
                )
            )
        ).all()
        open_holds = (await s.scalars(select(CreditHoldRow).where(CreditHoldRow.status == "open"))).all()
    assert usage == [-PER_CALL] and open_holds == []
    assert Decimal(log[-1]["data"]["credits"]) == PER_CALL


async def test_an_admins_run_is_never_charged_and_records_what_it_would_have_cost(
    api: Api, tmp_path: Path
) -> None:
    login = await http_login(api[0], ADMIN)
    headers = bearer(login["access_token"])
    started = await execute(
        api, headers, quick(tmp_path, "admin.json", turn(call("continue_work", next_action="look")))
    )
    assert started.status_code == 202, started.text
    assert (await finished(api, headers, started.json()["id"]))["status"] == "completed"
    charged = [e for e in await events(api, headers, started.json()["id"]) if e["type"] == "credits.charged"]
    assert len(charged) == 2 and all(
        e["data"]["admin_bypass"] and Decimal(e["data"]["amount"]) == 0 for e in charged
    )
    async with api[1].state.db.session() as s:
        rows = (
            await s.scalars(
                select(CreditTransactionRow).where(CreditTransactionRow.user_id == login["user"]["id"])
            )
        ).all()
    assert [r.type for r in rows] == ["admin_bypass", "admin_bypass"]
    assert all(r.amount == 0 and r.unbilled == PER_CALL for r in rows)


async def test_at_most_three_sessions_of_a_user_run_at_once(api: Api, tmp_path: Path) -> None:
    headers, _ = await user(api, "busy@example.org")
    other, _ = await user(api, "neighbour@example.org")
    slow = write_script(
        tmp_path / "slow.json", [turn(call("continue_work", next_action="wait"), delay_ms=20_000), complete()]
    )
    started = [await execute(api, headers, slow) for _ in range(3)]
    assert [r.status_code for r in started] == [202, 202, 202]
    refused = await execute(api, headers, slow)
    assert refused.status_code == 409 and refused.json()["error"]["details"] == {"running": 3, "limit": 3}
    assert (await execute(api, other, slow)).status_code == 202  # another user's count is their own
    cancelled = await api[0].post(f"{AGENTS}/sessions/{started[0].json()['id']}/cancel", headers=headers)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert (await execute(api, headers, slow)).status_code == 202


async def test_executions_arriving_at_once_are_admitted_up_to_the_limit_without_waiting_on_each_other(
    api: Api, tmp_path: Path
) -> None:
    """The request's write lock and the per-user admission are taken in one order: four
    executions at the same instant give three runs and one 409, quickly, never a 500."""
    headers, _ = await user(api, "eager@example.org")
    slow = write_script(
        tmp_path / "slow.json", [turn(call("continue_work", next_action="wait"), delay_ms=20_000), complete()]
    )
    async with asyncio.timeout(20):
        answers = await asyncio.gather(*(execute(api, headers, slow) for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [202, 202, 202, 409], [r.text for r in answers]


async def test_ten_executions_an_hour_per_user(make_api: Callable[..., Any], tmp_path: Path) -> None:
    api = await make_api(KEEN_RATE_LIMIT_EXECUTE="10/hour", KEEN_MAX_RUNNING_SESSIONS="20")
    headers, _ = await user(api, "eager@example.org")
    script = quick(tmp_path)
    for _ in range(10):
        assert (await execute(api, headers, script)).status_code == 202
    refused = await execute(api, headers, script)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    listed = (await api[0].get(f"{AGENTS}/sessions", params={"limit": 100}, headers=headers)).json()
    for item in listed["items"]:
        await finished(api, headers, item["id"])


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc", "KEEN_ALLOW_LOCAL_REPOS"),
        ("/srv/repos/private", "KEEN_ALLOW_LOCAL_REPOS"),
        ("ext::sh%20-c%20touch%20/tmp/pwned", "transport helper"),
        ("-oProxyCommand=touch%20/tmp/pwned", "must not start with '-'"),
        ("https://example.org/a repo", "without spaces"),
        ("http://example.org/repo.git", "scheme 'http' is not allowed"),
        ("git@example.org:repo.git", "scheme 'ssh' is not allowed"),
    ],
)
async def test_repo_urls_the_operator_did_not_allow_are_refused(
    api: Api, tmp_path: Path, url: str, problem: str
) -> None:
    headers, _ = await user(api, "cloner@example.org")
    response = await execute(api, headers, quick(tmp_path), repo_url=url)
    assert response.status_code == 422, response.text
    assert problem in response.json()["error"]["message"]


async def test_a_local_repository_is_cloned_when_allowed_and_the_diff_is_the_agents_own(
    make_api: Callable[..., Any], tmp_path: Path, repo: Path
) -> None:
    api = await make_api(KEEN_ALLOW_LOCAL_REPOS="1")
    headers, _ = await user(api, "cloner@example.org")
    script = quick(
        tmp_path, "edit.json", turn(call("write_files", files=[{"path": "new.txt", "content": "new\n"}]))
    )
    started = await execute(api, headers, script, repo_url=f"file://{repo}")
    assert started.status_code == 202, started.text
    session_id = started.json()["id"]
    assert (await finished(api, headers, session_id))["status"] == "completed"
    base = f"{AGENTS}/sessions/{session_id}"
    files = (await api[0].get(f"{base}/files", headers=headers)).json()
    assert {f["path"] for f in files["items"]} == {"README.md", "new.txt"}
    assert (await api[0].get(f"{base}/files/README.md", headers=headers)).content == b"# demo\n"
    patch = (await api[0].get(f"{base}/diff", headers=headers)).text
    assert "+++ b/new.txt" in patch and "README.md" not in patch
    archive = await api[0].get(f"{base}/archive", headers=headers)
    assert archive.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["README.md", "new.txt"]
        assert tar.extractfile("new.txt").read() == b"new\n"  # type: ignore[union-attr]
    assert git(repo, "status", "--porcelain") == ""  # the source repository is untouched


async def test_files_are_confined_to_the_workspace(api: Api, tmp_path: Path) -> None:
    headers, _ = await user(api, "reader@example.org")
    script = quick(
        tmp_path,
        "link.json",
        turn(call("run_command", command="ln -s /etc/hostname host && ln -s ../../../keen.db db && mkdir d")),
    )
    session_id = (await execute(api, headers, script)).json()["id"]
    await finished(api, headers, session_id)
    base = f"{AGENTS}/sessions/{session_id}/files"
    for path, status in (("host", 400), ("db", 400), ("d", 422), ("missing.txt", 404)):
        response = await api[0].get(f"{base}/{path}", headers=headers)
        assert response.status_code == status, (path, response.text)
    listed = {f["path"]: f for f in (await api[0].get(base, headers=headers)).json()["items"]}
    assert listed["host"] == {"path": "host", "type": "symlink", "size": None, "target": "/etc/hostname"}


async def test_sessions_are_listed_paginated_filtered_and_their_tree_and_events_read(
    api: Api, tmp_path: Path
) -> None:
    headers, _ = await user(api, "lister@example.org")
    ids = [(await execute(api, headers, quick(tmp_path))).json()["id"] for _ in range(3)]
    for session_id in ids:
        await finished(api, headers, session_id)
    page = (await api[0].get(f"{AGENTS}/sessions", params={"limit": 2}, headers=headers)).json()
    rest = (await api[0].get(f"{AGENTS}/sessions", params={"limit": 2, "offset": 2}, headers=headers)).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and len(rest["items"]) == 1
    assert {i["id"] for i in page["items"] + rest["items"]} == set(ids)
    done = (await api[0].get(f"{AGENTS}/sessions", params={"status": "completed"}, headers=headers)).json()
    assert done["total"] == 3
    assert (await api[0].get(f"{AGENTS}/sessions", params={"status": "failed"}, headers=headers)).json()[
        "total"
    ] == 0
    assert (
        await api[0].get(f"{AGENTS}/sessions", params={"status": "nonsense"}, headers=headers)
    ).status_code == 422
    tree = (await api[0].get(f"{AGENTS}/sessions/{ids[0]}/tree", headers=headers)).json()
    assert tree["root"]["session_id"] == ids[0] and tree["root"]["status"] == "completed"
    everything = await events(api, headers, ids[0])
    assert [e["seq"] for e in await events(api, headers, ids[0], after_seq=2)] == [
        e["seq"] for e in everything[2:]
    ]


async def test_without_bubblewrap_runs_are_refused_and_readiness_says_so(
    make_api: Callable[..., Any], tmp_path: Path
) -> None:
    api = await make_api(KEEN_BWRAP="/nonexistent/bwrap")
    headers, _ = await user(api, "sandboxless@example.org")
    refused = await execute(api, headers, quick(tmp_path))
    assert refused.status_code == 503 and "KEEN_SANDBOX=none" in refused.json()["error"]["message"]
    ready = await api[0].get("/health/ready")
    assert ready.status_code == 503 and "sandbox" in ready.json()["error"]["details"]["failed"]
    api = await make_api(KEEN_BWRAP="/nonexistent/bwrap", KEEN_SANDBOX="none")
    summary = (await api[0].get("/health")).json()
    assert (
        summary["checks"]["sandbox"]["ok"] and "KEEN_SANDBOX=none" in summary["checks"]["sandbox"]["detail"]
    )
    headers, _ = await user(api, "operator-choice@example.org")
    assert (await execute(api, headers, quick(tmp_path))).status_code == 202


class SilentSocket:
    """A client that never reads: nothing leaves the queue."""

    async def send_text(self, text: str) -> None:
        await asyncio.Event().wait()


async def test_a_subscriber_that_does_not_keep_up_is_dropped_with_its_queue_bounded(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers, user_id = await user(api, "slow@example.org")
    steps = [turn(call("continue_work", next_action=f"step {i}")) for i in range(10)]
    session_id = (
        await execute(api, headers, write_script(tmp_path / "many.json", [*steps, complete()]))
    ).json()["id"]
    await finished(api, headers, session_id)

    monkeypatch.setattr(ws, "QUEUE_FRAMES", 8)
    principal = Principal(user_id, "slow@example.org", "user", frozenset(USER_SCOPES), "sign_in", "family")
    conn = ws.Connection(SilentSocket(), api[1].state.runs, principal)  # type: ignore[arg-type]
    message: dict[str, Any] = {"type": "subscribe", "session_id": session_id, "after_seq": 0}
    await conn.subscribe(message)
    await asyncio.wait_for(conn.too_slow.wait(), 10)
    assert conn.outgoing.qsize() == 8  # never more than the bound
    await asyncio.sleep(0.05)
    assert conn.subscriptions == {}  # its forwarding stopped
    await conn.close()

    # A client that keeps up gets the whole stream through the same queue.
    monkeypatch.setattr(ws, "QUEUE_FRAMES", 1000)
    keeping_up = ws.Connection(SilentSocket(), api[1].state.runs, principal)  # type: ignore[arg-type]
    await keeping_up.subscribe({**message, "after_seq": 3})
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != "end":
        frame = await asyncio.wait_for(keeping_up.outgoing.get(), 10)
        frames.append(frame if isinstance(frame, dict) else json.loads(frame))
    seqs = [f["event"]["seq"] for f in frames if f["type"] == "event"]
    assert seqs[0] == 4 and seqs == list(range(4, seqs[-1] + 1)) and not keeping_up.too_slow.is_set()
    await keeping_up.close()

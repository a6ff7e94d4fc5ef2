"""Distributed mode as tests run it: a fresh PostgreSQL database upgraded by its owner, `keen
serve` replicas and `keen worker` processes as subprocesses connected as the application role,
sharing one KEEN_HOME (workspaces must be on a filesystem every worker sees), and the ledger and
queue read straight from the database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from helpers import KEEN_BIN, run_keen
from pgdb import app_login_role, fresh_database
from runkit import RUN_ENV, sign_up
from serverkit import Server

DISTRIBUTED_ENV = {
    **RUN_ENV,
    "KEEN_RUN_MODE": "distributed",
    "KEEN_MAX_RUNNING_SESSIONS": "50",
    "PYTHONUNBUFFERED": "1",
}


class Worker:
    """A `keen worker` subprocess."""

    def __init__(self, home: Path, env: dict[str, str], concurrency: int = 2) -> None:
        self.log = home.parent / f"worker-{os.urandom(3).hex()}.log"
        self._out = self.log.open("w")
        self.process = subprocess.Popen(
            [str(KEEN_BIN), "worker", "--concurrency", str(concurrency)],
            env={**os.environ, "KEEN_HOME": str(home), "NO_COLOR": "1", **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own group, so that a kill reaches only it
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for it to end; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._out.close()
        return code

    def kill(self) -> None:
        """`kill -9` of the worker alone (the commands it started are in their own groups)."""
        self.process.kill()
        self.process.wait(timeout=30)
        self._out.close()


class Cluster:
    def __init__(self, home: Path, owner_url: str, app_url: str, stack: ExitStack) -> None:
        self.home = home
        self.owner_url = owner_url
        self.app_url = app_url
        self.env = {**DISTRIBUTED_ENV, "KEEN_DATABASE_URL": app_url}
        self._stack = stack
        self.servers: list[Server] = []
        self.workers: list[Worker] = []

    def server(self, **env: str) -> Server:
        server = Server(self.home, {**self.env, **env})
        self.servers.append(server)
        self._stack.callback(server.stop)
        server.wait_live()
        return server

    def worker(self, concurrency: int = 2, **env: str) -> Worker:
        worker = Worker(self.home, {**self.env, **env}, concurrency)
        self.workers.append(worker)
        self._stack.callback(lambda: worker.process.poll() is None and worker.stop())
        return worker

    def user(self, server: Server, email: str, credits: str = "10") -> tuple[dict[str, str], str]:
        """A user signed up on `server` with `credits`: their Authorization header and id."""
        headers, user_id = sign_up(server.url, email)
        self.grant(user_id, credits)
        return headers, user_id

    def grant(self, user_id: str, amount: str) -> None:
        from keen.store import Database
        from ledgerkit import grant

        async def work() -> None:
            db = Database(self.owner_url)
            try:
                await grant(db, user_id, amount)
            finally:
                await db.dispose()

        asyncio.run(work())

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.owner_url) as conn:
            return list(conn.execute(sql, args).fetchall())

    def one(self, sql: str, *args: Any) -> Any:
        return self.query(sql, *args)[0][0]

    def open_holds(self, user_id: str) -> int:
        return int(
            self.one("select count(*) from credit_holds where user_id = %s and status = 'open'", user_id)
        )

    def usage(self, user_id: str) -> tuple[int, Decimal]:
        """How many usage charges the user has, and their total (a positive amount)."""
        count, total = self.query(
            "select count(*), coalesce(sum(amount), 0) from credit_transactions "
            "where user_id = %s and type = 'usage'",
            user_id,
        )[0]
        return int(count), -Decimal(total)

    def jobs(self, session_id: str) -> list[tuple[Any, ...]]:
        """(id, status, attempts) of the session's jobs."""
        return self.query(
            "select id, status::text, attempts from procrastinate_jobs where lock = %s order by id",
            session_id,
        )


@contextmanager
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """An empty distributed deployment: a database upgraded by `keen db upgrade` as its owner."""
    with ExitStack() as stack:
        owner_url = stack.enter_context(fresh_database())
        app_url = stack.enter_context(app_login_role(owner_url))
        home = tmp_path / "home"
        upgraded = run_keen(
            "db", "upgrade", cwd=tmp_path, env={"KEEN_HOME": str(home), "KEEN_DATABASE_URL": owner_url}
        )
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        yield Cluster(home, owner_url, app_url, stack)

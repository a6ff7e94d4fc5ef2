"""What tests of the CLI against a server share: a `keen serve` that runs scripted models, a
user signed up with credits, and `keen` run as that user's CLI (its own KEEN_HOME)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from authkit import API, PASSWORD
from helpers import KEEN_BIN, run_keen
from keen.auth.mfa import totp_code
from runkit import grant, sign_up
from serverkit import Server

SEQ_LINE = re.compile(r"^\s*(\d+) \S+\s+[a-z_]+\.[a-z_.]+ ")


@dataclass
class Person:
    """A user of `server` and the KEEN_HOME of their CLI."""

    server: Server
    server_home: Path
    home: Path
    email: str
    user_id: str
    headers: dict[str, str]

    def env(self, **extra: str) -> dict[str, str]:
        return {"KEEN_HOME": str(self.home), **extra}

    def keen(
        self, *args: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run_keen(*args, cwd=self.home.parent, env=self.env(), input=input, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(KEEN_BIN), *args],
            cwd=self.home.parent,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **self.env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def login(
        self, password: str = PASSWORD, mfa_code: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`keen login --password-stdin` (the MFA code, if given, on stdin's next line)."""
        stdin = f"{password}\n" + (f"{mfa_code}\n" if mfa_code is not None else "")
        return self.keen(
            "login", "--server", self.server.url, "--email", self.email, "--password-stdin", input=stdin
        )


def person(server: Server, server_home: Path, tmp_path: Path, email: str, credits: str = "10") -> Person:
    headers, user_id = sign_up(server.url, email)
    if credits:
        grant(server_home, user_id, credits)
    home = tmp_path / f"cli-{email.split('@')[0]}" / "home"
    home.parent.mkdir(parents=True)
    return Person(server, server_home, home, email, user_id, headers)


def seqs_shown(stdout: str) -> list[int]:
    """The seq of each event line the plain (non-terminal) view printed."""
    return [int(m.group(1)) for line in stdout.splitlines() if (m := SEQ_LINE.match(line))]


def enable_mfa(server: Server, headers: dict[str, str]) -> str:
    """MFA on, enrolled with the previous step's code (so the current one is still unused)."""
    setup = httpx.post(f"{server.url}{API}/mfa/setup", headers=headers, timeout=30).json()
    earlier = datetime.now(UTC) - timedelta(seconds=30)
    enabled = httpx.post(
        f"{server.url}{API}/mfa/enable",
        json={"code": totp_code(setup["secret"], earlier)},
        headers=headers,
        timeout=30,
    )
    assert enabled.status_code == 200, enabled.text
    return str(setup["secret"])

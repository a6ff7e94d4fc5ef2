"""Where the server's sessions work: `$KEEN_HOME/workspaces/<user>/<session>`, a new git
repository or a clone of the session's `repo_url`.

Living under `$KEEN_HOME`, which the sandbox hides, a session's workspace is invisible to every
other session's commands (each sandbox binds back only its own). A `repo_url` may use only the
schemes the operator allows (`KEEN_REPO_URL_SCHEMES`, https by default); `file://` URLs and
local paths would read the server's own disk, so they are refused unless the operator allows
them (`KEEN_ALLOW_LOCAL_REPOS=1`), and git's `<transport>::<address>` helpers always are. git is
told the same (`protocol.allow`), so a redirect or a submodule cannot reach another scheme.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from keen.config import Settings
from keen.errors import InputError
from keen.gitrepo import GitRepo

MAX_URL = 2000
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._~-]+@)?[A-Za-z0-9.-]+:(?!//)")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
LOCAL = "file"


def workspace_path(settings: Settings, user_id: str, session_id: str) -> Path:
    """The workspace of `session_id`, owned by `user_id`."""
    for value in (user_id, session_id):
        if not _ID.fullmatch(value):
            raise ValueError(f"{value!r} cannot name a workspace folder")
    return settings.keen_home / "workspaces" / user_id / session_id


def allowed_schemes(settings: Settings) -> frozenset[str]:
    schemes = {s.strip().lower() for s in settings.keen_repo_url_schemes.split(",") if s.strip()}
    schemes.discard(LOCAL)
    if settings.keen_allow_local_repos:
        schemes.add(LOCAL)
    return frozenset(schemes)


def repo_url_scheme(url: str, settings: Settings) -> str:
    """The git protocol `url` would be cloned over, or an `InputError` saying why it may not be."""
    if not url or len(url) > MAX_URL or not url.isprintable() or any(c.isspace() for c in url):
        raise InputError(f"repo_url must be a URL of at most {MAX_URL} characters without spaces")
    if url.startswith("-"):
        raise InputError("repo_url must not start with '-'")
    if "::" in url.split("/", 1)[0]:
        raise InputError("repo_url may not name a git transport helper (`<transport>::<address>`)")
    allowed = allowed_schemes(settings)
    if "://" in url:
        scheme = urlsplit(url).scheme.lower()
    elif _SCP_LIKE.match(url):
        scheme = "ssh"
    else:
        scheme = LOCAL
    if scheme not in allowed:
        if scheme == LOCAL:
            raise InputError(
                "repo_url names a path on the server (or a file:// URL): refused unless the operator "
                "sets KEEN_ALLOW_LOCAL_REPOS=1"
            )
        shown = ", ".join(sorted(allowed)) or "none"
        raise InputError(f"repo_url scheme {scheme!r} is not allowed here (allowed: {shown})")
    return scheme


async def prepare_workspace(path: Path, settings: Settings, repo_url: str | None = None) -> None:
    """Make the session's folder (mode 0700), cloning `repo_url` into it when one is given."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if repo_url is None:
        path.mkdir(mode=0o700)
        return
    scheme = repo_url_scheme(repo_url, settings)
    protocols = ["-c", "protocol.allow=never", "-c", f"protocol.{scheme}.allow=always"]
    result = await GitRepo(path.parent).run(
        *protocols,
        "clone",
        "--quiet",
        "--no-recurse-submodules",
        "--",
        repo_url,
        str(path),
        check=False,
        timeout=settings.keen_clone_timeout_seconds,
    )
    if not result.ok:
        remove_workspace(path)
        detail = "timed out" if result.timed_out else (result.stderr or result.stdout).strip()
        raise InputError(f"repo_url could not be cloned: {detail[-500:]}")
    path.chmod(0o700)


def remove_workspace(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

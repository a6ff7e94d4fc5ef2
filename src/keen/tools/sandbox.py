"""The sandbox agent commands run in: the one place that builds bubblewrap's command line.

Under bubblewrap (`bwrap`) a command sees the system read-only, its workspace read-write, a
private `/tmp`, a home of its own, and its own PID namespace and `/proc`: keen's process (its
environment, memory and open files), `$KEEN_HOME` (keen.db, credentials, `.env`, other sessions'
worktrees) and the `.env` files the person named are absent, and when the command's shell ends,
or keen dies, the kernel ends every process it started (`--unshare-pid --die-with-parent`).

Where bwrap cannot run, local mode falls back to the best containment left: a child subreaper
(`reaper.py`) that kills every descendant, and keen made non-dumpable so that a command running as
the same non-root user cannot read `/proc/<keen>/environ`, `mem` or `fd`. Each session says so
once. Server modes refuse that fallback (`require_sandbox`) unless the operator
sets `KEEN_SANDBOX=none`, which runs commands unsandboxed (still under the subreaper).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

from keen.config import Settings, env_files, get_settings
from keen.errors import ConfigError, WorkspaceError
from keen.git_config_guard import linked_worktree
from keen.gitrepo import GIT_IDENTITY
from keen.proc import ProcessResult, run_process

SandboxKind = Literal["bwrap", "fallback", "none"]
Mode = Literal["local", "server", "distributed"]
ReadOnly = Literal["file", "dir"]  # what a read-only path is (or will be, when absent)

REAPER = Path(__file__).with_name("reaper.py")
PROBE_TIMEOUT_SECONDS = 10
REAPER_GRACE_SECONDS = 2.0  # for the subreaper to kill the command's processes on SIGTERM
_PR_SET_DUMPABLE = 4
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# Variables that point into the person's own home or runtime dir: inside, they would send tools to
# read-only or absent places instead of the sandbox's home.
_HOST_DIRS = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")


@dataclass(frozen=True)
class SandboxPolicy:
    """How commands are contained, resolved from settings once (bwrap probed where it is asked)."""

    kind: SandboxKind
    network: bool = True
    hidden: tuple[Path, ...] = ()  # absent inside: $KEEN_HOME and the named .env files
    homes_dir: Path | None = None  # where each session's writable home is made
    bwrap: str = "bwrap"
    reason: str = ""  # why bwrap is not used (fallback)

    def describe(self) -> str:
        """One line for `keen status` and the session's notice."""
        if self.kind == "bwrap":
            net = "network on" if self.network else "network off"
            return f"bubblewrap ({net}; own PID namespace, workspace read-write, system read-only)"
        if self.kind == "none":
            return "none (KEEN_SANDBOX=none): commands run unsandboxed; their processes are still ended"
        return (
            f"fallback: {self.reason}; commands run without a file system sandbox (only their "
            "processes are contained)"
        )


@dataclass
class Sandbox:
    """The sandbox of one session (the whole agent tree): its policy and its own home."""

    policy: SandboxPolicy
    home: Path | None = None  # None: a fresh home in the private /tmp
    _noticed: bool = field(default=False, repr=False)

    def take_notice(self) -> str | None:
        """The fallback warning, the first time it is asked for in this session; else None."""
        if self.policy.kind != "fallback" or self._noticed:
            return None
        self._noticed = True
        return f"keen's sandbox is degraded: {self.policy.describe()}"

    async def run(
        self,
        argv: Sequence[str],
        *,
        workspace: Path,
        timeout: float,
        env: Mapping[str, str],
        writable: Iterable[Path] = (),
    ) -> ProcessResult:
        """Run `argv` in `workspace` inside the sandbox; `writable` adds read-write directories.

        Raises `FileNotFoundError` when the program does not exist, as `run_process` does.
        """
        program = shutil.which(argv[0], path=env.get("PATH")) if "/" not in argv[0] else argv[0]
        if program is None or not os.access(program, os.X_OK):
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        wrapped, inner_env = self.command(argv, workspace=workspace, env=env, writable=writable)
        grace = 0.0 if self.policy.kind == "bwrap" else REAPER_GRACE_SECONDS
        if self.policy.kind == "fallback":
            harden_keen()
        return await run_process(wrapped, cwd=workspace, timeout=timeout, env=inner_env, grace=grace)

    def command(
        self,
        argv: Sequence[str],
        *,
        workspace: Path,
        env: Mapping[str, str],
        writable: Iterable[Path] = (),
    ) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that run `argv` in this sandbox."""
        if self.policy.kind != "bwrap":
            return [*reaper_argv(), *argv], dict(env)
        workspace = workspace.resolve()
        inner = _inner_env(env, self.home)
        if self.home is not None:
            self.home.mkdir(parents=True, exist_ok=True)
        points, readonly = _git_config_mounts(workspace)
        rw = [workspace, *_git_dirs(workspace), *points, *(Path(p).resolve() for p in writable)]
        if self.home is not None:
            rw.append(self.home.resolve())
        prefix = bwrap_prefix(self.policy, rw, inner["HOME"], readonly=readonly)
        return [*prefix, "--chdir", str(workspace), "--", *argv], inner


def reaper_argv() -> list[str]:
    """The subreaper that runs a command when bwrap does not (stdlib only: `-I -S` start fast)."""
    return [sys.executable, "-I", "-S", str(REAPER), str(os.getpid()), "--"]


def bwrap_prefix(
    policy: SandboxPolicy,
    writable: Sequence[Path],
    home: str,
    *,
    readonly: Sequence[tuple[Path, ReadOnly]] = (),
) -> list[str]:
    """bwrap's options: namespaces, the system read-only, then the hidden, writable and
    read-only paths (`readonly`: files or directories inside writable ones)."""
    args = [
        policy.bwrap,
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--new-session",  # no TIOCSTI into a terminal keen may hold
        "--cap-drop",
        "ALL",  # run as root, the command could otherwise mount its way out
        *([] if policy.network else ["--unshare-net"]),
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/var/tmp",
    ]
    return [*args, *_own_python(), *_mounts(policy.hidden, writable, readonly), "--dir", home]


PRIVATE_TMP = (Path("/tmp"), Path("/var/tmp"))


def _own_python() -> list[str]:
    """keen's own Python, read-only, where the sandbox's private /tmp would hide it (a checkout
    and its venv under /tmp): the tools keen runs in the sandbox (ruff) come from there."""
    out: list[str] = []
    for prefix in sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}):
        if any(prefix.is_relative_to(tmp) for tmp in PRIVATE_TMP):
            out += ["--ro-bind", str(prefix), str(prefix)]
    return out


def _mounts(
    hidden: Iterable[Path], writable: Iterable[Path], readonly: Iterable[tuple[Path, ReadOnly]] = ()
) -> list[str]:
    """Mount options, shallowest path first, so that the deeper path wins where they nest: the
    workspace (or a child's worktree) inside a hidden $KEEN_HOME is visible, a $KEEN_HOME inside
    the workspace is not, the repository's config inside a writable workspace is read-only."""
    rw = {p for p in writable if p.is_dir()}
    hide = {p for p in (h.resolve() for h in hidden) if p.exists()}
    if clash := rw & hide:
        raise WorkspaceError(f"{sorted(clash)[0]} is keen's own home; it cannot be a workspace")
    ro = {p: kind for p, kind in readonly if not p.is_symlink()}
    mounts = [*((p, "hide") for p in hide), *((p, "rw") for p in rw), *((p, "ro") for p in ro)]
    ordered = sorted(mounts, key=lambda m: len(m[0].parts))
    out: list[str] = []
    sealed: list[Path] = []  # directories made read-only once everything inside is mounted
    for path, kind in ordered:
        if kind == "rw":
            out += ["--bind", str(path), str(path)]
        elif kind == "ro" and path.exists():
            out += ["--ro-bind", str(path), str(path)]
        elif kind == "ro" and ro[path] == "file":
            out += ["--ro-bind", os.devnull, str(path)]  # git reads an empty config
        elif path.is_dir() or kind == "ro":
            out += ["--tmpfs", str(path)]
            sealed.append(path)
        else:
            out += ["--ro-bind", os.devnull, str(path)]
    # Each hidden directory is an empty tmpfs, made read-only once the writable paths inside it
    # are mounted: a command can neither read keen's home nor leave anything there. An absent
    # `info` or `hooks` directory is the same: nothing can be planted in it.
    for path in sorted(sealed):
        out += ["--remount-ro", str(path)]
    return out


def _git_dirs(workspace: Path) -> list[Path]:
    """The repository a linked worktree (a child's) commits into: writable too, or git fails."""
    found = _linked_admin(workspace)
    return [] if found is None else [found[1]]


def _linked_admin(workspace: Path) -> tuple[Path, Path] | None:
    """(admin directory, common repository) of the linked worktree at `workspace`.

    The `.git` file is the agent's to rewrite, so it is believed only where git's own layout
    confirms it: a `<repository>/worktrees/<name>` directory whose `gitdir` file points back at
    this worktree. A forged one (`gitdir: /etc`) binds nothing.
    """
    found = linked_worktree(workspace)
    if found is None:
        return None
    admin, common = found
    dot_git = workspace / ".git"
    try:
        backlink = Path((admin / "gitdir").read_text(errors="replace").strip()).resolve()
    except (OSError, ValueError):
        return None
    genuine = (
        admin.parent.name == "worktrees"
        and admin.parent.parent == common
        and backlink == dot_git.resolve()
        and (common / "objects").is_dir()
        and (common / "HEAD").is_file()
    )
    return (admin, common) if genuine else None


def _git_config_mounts(workspace: Path) -> tuple[list[Path], list[tuple[Path, ReadOnly]]]:
    """The repository's configuration read-only inside the sandbox: (mount points to add to the
    writable ones, read-only paths).

    keen's own git runs unsandboxed in this repository, and so does the person's, later: a
    filter, driver or hook the agent could plant here would run outside the sandbox. `.git`
    itself becomes a mount point so that it cannot be renamed away and replaced by a repository
    of the agent's making; a linked worktree's `.git` file and its admin directory's pointers
    are read-only too. What is absent is made so it cannot be created (an empty read-only
    directory, an empty config file). A `commondir` or `config.worktree` that does not exist is
    left alone (an empty one would break git); keen's own git checks them (`git_config_guard`).
    """
    dot_git = workspace / ".git"
    linked = _linked_admin(workspace)
    if linked is not None:
        admin, common = linked
        pointers = [dot_git, admin / "gitdir", admin / "commondir", admin / "config.worktree"]
        readonly: list[tuple[Path, ReadOnly]] = [(p, "file") for p in pointers if p.is_file()]
        return [], [*readonly, *_repository_config(common)]
    if dot_git.is_symlink() or not dot_git.is_dir():
        return [], []
    return [dot_git], _repository_config(dot_git)


def _repository_config(gitdir: Path) -> list[tuple[Path, ReadOnly]]:
    out: list[tuple[Path, ReadOnly]] = [(gitdir / "config", "file")]
    if (gitdir / "config.worktree").is_file():
        out.append((gitdir / "config.worktree", "file"))
    return [*out, (gitdir / "info", "dir"), (gitdir / "hooks", "dir")]


def _inner_env(env: Mapping[str, str], home: Path | None) -> dict[str, str]:
    inner = {k: v for k, v in env.items() if k not in _HOST_DIRS}
    for key, value in GIT_IDENTITY.items():  # a fresh home has no git identity
        inner.setdefault(key, value)
    home_dir = str(home.resolve()) if home is not None else "/tmp/home"
    inner.update({"HOME": home_dir, "TMPDIR": "/tmp"})
    return inner


# -- choosing the policy ---------------------------------------------------------------------


@lru_cache(maxsize=8)
def bwrap_problem(bwrap: str) -> str | None:
    """Why bwrap cannot run here, or None when it can (a real sandbox is started once)."""
    path = shutil.which(bwrap)
    if path is None:
        return f"bubblewrap ({bwrap}) is not installed; install it (Debian: apt-get install bubblewrap)"
    probe = [path, "--die-with-parent", "--unshare-pid", "--cap-drop", "ALL"]
    probe += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--", "true"]
    try:
        done = subprocess.run(
            probe, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap cannot start here: {exc}"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return f"bubblewrap cannot run here: {detail[-1] if detail else f'exit {done.returncode}'}"
    return None


def policy_from_settings(settings: Settings | None = None) -> SandboxPolicy:
    """The policy `KEEN_SANDBOX` asks for; `bwrap` where it cannot run is a configuration error."""
    settings = settings or get_settings()
    bwrap = shutil.which(settings.keen_bwrap) or settings.keen_bwrap  # never a PATH lookup later
    policy = SandboxPolicy(
        kind="none",
        network=settings.keen_sandbox_network,
        hidden=(settings.keen_home, *env_files(), *_sqlite_files(settings.database_url, settings.keen_home)),
        homes_dir=settings.keen_home / "sandbox",
        bwrap=bwrap,
    )
    if settings.keen_sandbox == "none":
        return policy
    problem = bwrap_problem(bwrap)
    if problem is None:
        return replace(policy, kind="bwrap")
    if settings.keen_sandbox == "bwrap":
        raise ConfigError(f"KEEN_SANDBOX=bwrap, but {problem}")
    return replace(policy, kind="fallback", reason=problem)


def _sqlite_files(url: str, keen_home: Path) -> list[Path]:
    """keen's database when it is a SQLite file outside $KEEN_HOME (with its journal files);
    inside it, hiding $KEEN_HOME hides it already."""
    if not url.startswith("sqlite") or ":///" not in url:
        return []
    name = url.split(":///", 1)[1].split("?", 1)[0]
    if not name or name == ":memory:":
        return []
    if Path(name).resolve().is_relative_to(keen_home.resolve()):
        return []
    return [Path(name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]


def require_sandbox(settings: Settings, mode: Mode) -> SandboxPolicy:
    """The policy for `mode`; server modes refuse to run agent commands without bubblewrap
    unless the operator chose `KEEN_SANDBOX=none` explicitly."""
    if mode not in ("local", "server", "distributed"):
        raise ValueError(f"unknown mode {mode!r}")
    policy = policy_from_settings(settings)
    if mode != "local" and policy.kind == "fallback":
        raise ConfigError(
            f"{mode} mode runs agent commands only in bubblewrap's sandbox, and {policy.reason}. "
            "Install bubblewrap, or set KEEN_SANDBOX=none to run agent commands unsandboxed."
        )
    return policy


def session_sandbox(policy: SandboxPolicy, session_id: str) -> Sandbox:
    """The sandbox of a session tree (one per root session: its home and its one notice)."""
    return _session_sandbox(policy, session_id)


@lru_cache(maxsize=256)
def _session_sandbox(policy: SandboxPolicy, session_id: str) -> Sandbox:
    home = None
    if policy.homes_dir is not None:
        safe = _SAFE_ID.fullmatch(session_id) and session_id not in (".", "..")
        name = session_id if safe else hashlib.sha256(session_id.encode()).hexdigest()[:32]
        home = policy.homes_dir / name / "home"
    return Sandbox(policy=policy, home=home)


def remove_home(sandbox: Sandbox) -> None:
    """Delete a session's sandbox home once the session has ended for good (a session that may
    still be resumed keeps it: a crash leaves it in place)."""
    if sandbox.home is not None:
        shutil.rmtree(sandbox.home.parent, ignore_errors=True)


def harden_keen() -> None:
    """Make keen's own process non-dumpable: /proc/<keen>/environ, mem and fd become unreadable
    to other processes of the same (non-root) user, which is all a fallback can still hide."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)

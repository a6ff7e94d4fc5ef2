"""Git through subprocesses with argument lists (never a shell string).

Used by the runner (snapshots, final commit, file lists), the agent tree (worktrees, merges)
and the `git` tool, so git is invoked one way everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from keen.errors import WorkspaceError
from keen.proc import ProcessResult, run_process

GIT_TIMEOUT_SECONDS = 120.0

# Commits keen makes must work on machines with no git identity configured.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "keen",
    "GIT_AUTHOR_EMAIL": "keen@localhost",
    "GIT_COMMITTER_NAME": "keen",
    "GIT_COMMITTER_EMAIL": "keen@localhost",
}


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for git: `base` (default: the environment without keen's secrets, since
    git runs hooks the agent may have written) plus an identity and no prompts."""
    from keen.tools.shell import scrubbed_env

    env = dict(scrubbed_env() if base is None else base)
    for key, value in _IDENTITY.items():
        env.setdefault(key, value)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


@dataclass
class FileChanges:
    created: list[str]
    modified: list[str]
    deleted: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"files_created": self.created, "files_modified": self.modified, "files_deleted": self.deleted}


class GitRepo:
    """A git work tree at `path` (a main checkout or a linked worktree)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    async def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = GIT_TIMEOUT_SECONDS,
        env: Mapping[str, str] | None = None,
    ) -> ProcessResult:
        """Run git; `env` replaces `git_env()` (the git tool passes one without keen's secrets)."""
        env = git_env() if env is None else env
        result = await run_process(["git", *args], cwd=self.path, timeout=timeout, env=env)
        if check and not result.ok:
            detail = "timed out" if result.timed_out else (result.stderr or result.stdout).strip()
            raise WorkspaceError(f"git {' '.join(args)} failed in {self.path}: {detail}")
        return result

    async def out(self, *args: str) -> str:
        return (await self.run(*args)).stdout.strip()

    async def is_repo(self) -> bool:
        result = await self.run("rev-parse", "--is-inside-work-tree", check=False)
        return result.ok and result.stdout.strip() == "true"

    async def is_toplevel(self) -> bool:
        result = await self.run("rev-parse", "--show-toplevel", check=False)
        return result.ok and Path(result.stdout.strip()).resolve() == self.path.resolve()

    async def has_commits(self) -> bool:
        return (await self.run("rev-parse", "--verify", "-q", "HEAD", check=False)).ok

    async def head(self) -> str:
        return await self.out("rev-parse", "HEAD")

    async def current_branch(self) -> str | None:
        result = await self.run("symbolic-ref", "--short", "-q", "HEAD", check=False)
        return result.stdout.strip() or None

    async def status_porcelain(self) -> list[str]:
        out = (await self.run("status", "--porcelain", "--untracked-files=all")).stdout
        return [line for line in out.splitlines() if line.strip()]

    async def is_dirty(self) -> bool:
        return bool(await self.status_porcelain())

    async def commit_all(self, message: str, *, allow_empty: bool = False) -> str | None:
        """Stage everything and commit. Returns the new commit, or None when nothing changed."""
        await self.run("add", "-A")
        if not allow_empty and not (await self.run("diff", "--cached", "--quiet", check=False)).exit_code:
            return None
        args = ["commit", "-q", "--no-verify", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        await self.run(*args)
        return await self.head()

    async def files_in_commit(self, commit: str) -> list[str]:
        out = await self.out("show", "--name-only", "--pretty=format:", commit)
        return [line for line in out.splitlines() if line]

    async def changes_between(self, start: str, end: str = "HEAD") -> FileChanges:
        """Files created, modified and deleted between two commits, as git sees them."""
        out = (await self.run("diff", "--name-status", "--no-renames", start, end)).stdout
        created: list[str] = []
        modified: list[str] = []
        deleted: list[str] = []
        for line in out.splitlines():
            status, _, name = line.partition("\t")
            bucket = {"A": created, "D": deleted}.get(status[:1], modified)
            bucket.append(name)
        return FileChanges(created=created, modified=modified, deleted=deleted)

    async def init(self) -> None:
        await self.run("init", "-q")


async def ensure_repository(path: Path, *, allow_dirty: bool) -> tuple[GitRepo, str]:
    """Make `path` a usable workspace per the spec and return it with its start commit.

    Not a repository: `git init` and commit what is there as a first snapshot. A dirty tree is
    refused unless `allow_dirty`, which commits it as a snapshot first so the person's changes
    and the agent's stay apart.
    """
    repo = GitRepo(path)
    # A directory inside another repository gets a repository of its own: the agent's commits
    # must not land in a project it was not pointed at.
    if not await repo.is_toplevel():
        await repo.init()
        await repo.commit_all("keen: initial snapshot of the workspace", allow_empty=True)
        return repo, await repo.head()
    if not await repo.has_commits():
        await repo.commit_all("keen: initial snapshot of the workspace", allow_empty=True)
        return repo, await repo.head()
    if await repo.is_dirty():
        if not allow_dirty:
            changed = await repo.status_porcelain()
            raise WorkspaceError(
                f"the work tree in {path} has {len(changed)} uncommitted change(s); commit or stash "
                "them, or pass --allow-dirty to snapshot them first"
            )
        await repo.commit_all("keen: snapshot of uncommitted changes before the session")
    return repo, await repo.head()


async def _git_path(repo: GitRepo, name: str) -> Path | None:
    result = await repo.run("rev-parse", "--git-path", name, check=False)
    if not result.ok:
        return None
    path = Path(result.stdout.strip())
    return path if path.is_absolute() else repo.path / path


async def recover_interrupted(repo: GitRepo) -> None:
    """Undo what a killed keen left half-done in `repo`: a merge in progress is aborted and a
    stale index lock removed (the caller holds the session's lease: no keen git runs there)."""
    lock = await _git_path(repo, "index.lock")
    if lock is not None and lock.exists():
        lock.unlink(missing_ok=True)
    merge_head = await _git_path(repo, "MERGE_HEAD")
    if merge_head is not None and merge_head.exists():
        await repo.run("merge", "--abort", check=False)
    await repo.run("worktree", "prune", check=False)

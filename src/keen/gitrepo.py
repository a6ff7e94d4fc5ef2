"""keen's own git, through subprocesses with argument lists (never a shell string).

Used by the runner (snapshots, final commit, file lists) and the agent tree (worktrees, merges),
so keen invokes git one way everywhere. The agent's own `git` tool runs git in the sandbox.

The agent can write the repository's hooks and config, so keen's own git runs no hook (a hooks
directory nothing can be written into), no file system monitor program, no pager, editor or
transport (whatever program the configuration names for them), refuses to run where the repository's
own configuration names a driver (`git_config_guard`), and lists file names NUL-separated,
exactly as they are (git's plain output C-quotes non-ASCII characters and tabs).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from keen.errors import WorkspaceError
from keen.git_config_guard import ensure_safe_config
from keen.proc import ProcessResult, run_process

GIT_TIMEOUT_SECONDS = 120.0
# Before every subcommand of keen's own git. `--no-verify` would skip only pre-commit and
# commit-msg; prepare-commit-msg, post-commit and reference-transaction would still run.
# /dev/null is a hooks directory that no hook can ever be planted in.
# No transport at all (keen's git never fetches in a workspace; a clone allows its one scheme
# after these), so no ssh command, proxy, credential helper or `ext::` program can start; each
# protocol by name too, since `protocol.<name>.allow` outranks `protocol.allow`. No checkout,
# merge or fetch recursing into submodules, and status and diff compare a submodule's commit
# only: its work tree (where its own configuration could name a filter) is not looked into.
SAFE_CONFIG = (
    "--no-pager",
    "-c",
    f"core.hooksPath={os.devnull}",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.quotePath=false",
    "-c",
    "protocol.allow=never",
    *(
        arg
        for name in ("file", "git", "ssh", "http", "https", "ext")
        for arg in ("-c", f"protocol.{name}.allow=never")
    ),
    "-c",
    "submodule.recurse=false",
    "-c",
    "diff.ignoreSubmodules=dirty",
)

KEEN_NAME, KEEN_EMAIL = "keen", "keen@localhost"
# keen commits (its identity is the committer); the author is the user when git knows who they
# are (`GitRepo.run` checks), keen only when it does not, so commits work on any machine.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": KEEN_NAME,
    "GIT_AUTHOR_EMAIL": KEEN_EMAIL,
    "GIT_COMMITTER_NAME": KEEN_NAME,
    "GIT_COMMITTER_EMAIL": KEEN_EMAIL,
}

# keen is the committer; the author is the user whenever git knows who they are (`GitRepo.run`
# checks before each subcommand that can make a commit), keen only when it does not.
_AUTHOR_VARIABLES = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL")
# Subcommands that make a new repository and read no configuration but the person's: the
# repository around the folder they run in (say, a home directory kept in git) is not checked.
_REPOSITORY_FREE = frozenset({"clone", "init"})
_COMMITTING = frozenset({"commit", "merge", "stash", "cherry-pick", "revert", "rebase", "am", "pull", "tag"})


def _subcommand(args: tuple[str, ...]) -> str | None:
    """The git subcommand in `args`, after any `-c name=value` options."""
    rest = list(args)
    while rest[:1] == ["-c"]:
        rest = rest[2:]
    return rest[0] if rest else None


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for git: `base` (default: the environment without keen's secrets, since
    git runs hooks the agent may have written) plus an identity and no prompts."""
    from keen.secrets import scrubbed_env

    env = dict(scrubbed_env() if base is None else base)
    for key, value in GIT_IDENTITY.items():
        env.setdefault(key, value)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_EDITOR"] = env["GIT_SEQUENCE_EDITOR"] = ":"  # never the configured editor
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


@dataclass
class SkippedFile:
    """A file keen's commits leave out because it is over the size limit (it stays in the work tree)."""

    path: str
    size_bytes: int
    limit_bytes: int

    def as_dict(self) -> dict[str, object]:
        limit = _size_text(self.limit_bytes)
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "reason": f"larger than the {limit} limit of keen's commits; left uncommitted in the work tree",
        }


@dataclass
class FileChanges:
    created: list[str]
    modified: list[str]
    deleted: list[str]
    skipped: list[SkippedFile] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str] | list[dict[str, object]]]:
        return {
            "files_created": self.created,
            "files_modified": self.modified,
            "files_deleted": self.deleted,
            "files_skipped": [f.as_dict() for f in self.skipped],
        }


@dataclass
class Commit:
    """What `GitRepo.commit` did: the new commit (None when nothing changed), the files it
    holds, the branch it is on, and the files left out of it for their size."""

    commit: str | None
    files: list[str]
    branch: str | None
    skipped: list[SkippedFile]


def _size_text(size: int) -> str:
    mib = 1024 * 1024
    return f"{size // mib} MB" if size % mib == 0 else f"{size} bytes"


class GitRepo:
    """A git work tree at `path` (a main checkout or a linked worktree).

    `max_file_bytes` bounds what keen's commits take (default: `KEEN_COMMIT_MAX_FILE_BYTES`).
    """

    def __init__(self, path: Path | str, *, max_file_bytes: int | None = None) -> None:
        self.path = Path(path)
        self._max_file_bytes = max_file_bytes

    @property
    def max_file_bytes(self) -> int:
        if self._max_file_bytes is None:
            from keen.config import get_settings

            self._max_file_bytes = get_settings().keen_commit_max_file_bytes
        return self._max_file_bytes

    async def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = GIT_TIMEOUT_SECONDS,
        env: Mapping[str, str] | None = None,
        author_resolved: bool = False,
    ) -> ProcessResult:
        """Run git; `env` replaces `git_env()` (the git tool passes one without keen's secrets).
        `author_resolved`: `env` comes from `_with_author` already (asked meanwhile)."""
        env = git_env() if env is None else env
        if args and args[0] in _COMMITTING and not author_resolved:
            env = await self._with_author(env)
        if _subcommand(args) not in _REPOSITORY_FREE:
            await ensure_safe_config(self.path, ["git", *SAFE_CONFIG], env)
        result = await run_process(["git", *SAFE_CONFIG, *args], cwd=self.path, timeout=timeout, env=env)
        if check and not result.ok:
            detail = "timed out" if result.timed_out else (result.stderr or result.stdout).strip()
            raise WorkspaceError(f"git {' '.join(args)} failed in {self.path}: {detail}")
        return result

    async def _with_author(self, env: Mapping[str, str]) -> Mapping[str, str]:
        """`env` with keen's fallback author dropped when git knows the user here (their
        configuration, includes and `EMAIL` as git itself reads them)."""
        if any(env.get(k) != GIT_IDENTITY[k] for k in _AUTHOR_VARIABLES):
            return env  # the caller chose an author
        own = {k: v for k, v in env.items() if k not in _AUTHOR_VARIABLES}
        probe = await run_process(["git", "var", "GIT_AUTHOR_IDENT"], cwd=self.path, timeout=30, env=own)
        return own if probe.ok else env

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

    async def head_and_branch(self) -> tuple[str, str | None]:
        """HEAD's commit and the branch checked out (None when detached), in one git process."""
        commit, name = (await self.out("rev-parse", "HEAD", "--symbolic-full-name", "HEAD")).split("\n")
        return commit, (None if name == "HEAD" else name.removeprefix("refs/heads/"))

    async def status_porcelain(self) -> list[str]:
        """`XY path` per changed file, the path as it is (renames are an add and a delete)."""
        out = (await self.run("status", "--porcelain", "-z", "--untracked-files=all", "--no-renames")).stdout
        return [entry for entry in out.split("\0") if entry.strip()]

    async def is_dirty(self) -> bool:
        return bool(await self.status_porcelain())

    async def oversized_changes(self) -> list[SkippedFile]:
        """Changed or new files in the work tree larger than `max_file_bytes`."""
        return self._oversized(await self.status_porcelain())

    def _oversized(self, status: list[str]) -> list[SkippedFile]:
        limit = self.max_file_bytes
        found = []
        for entry in status:
            name = entry[3:]
            try:
                size = os.lstat(self.path / name).st_size
            except OSError:  # deleted
                continue
            if size > limit:
                found.append(SkippedFile(path=name, size_bytes=size, limit_bytes=limit))
        return found

    async def commit_all(self, message: str, *, allow_empty: bool = False) -> str | None:
        """Stage everything but oversized files and commit. Returns the new commit, or None when
        nothing changed. What is left out is reported by `changes_between(..., "HEAD")`."""
        return (await self.commit(message, allow_empty=allow_empty)).commit

    async def commit(self, message: str, *, allow_empty: bool = False) -> Commit:
        """`commit_all`, telling also the commit's files, its branch and what was left out for
        its size (what `changes_between(..., "HEAD")` would find), in as few git processes as
        that takes: none staged when nothing changed, and no `show` or `symbolic-ref` after."""
        status = await self.status_porcelain()
        oversized = self._oversized(status)
        if not status and not allow_empty:
            return Commit(None, [], None, [])
        # Who the author is depends on git's configuration only: asked while the files are staged.
        author = asyncio.ensure_future(self._with_author(git_env()))
        try:
            excluded = [f":(exclude,literal){f.path}" for f in oversized]
            await self.run("add", "-A", *(["--", ".", *excluded] if excluded else []))
            staged = (await self.run("diff", "--cached", "-z", "--name-only")).stdout
            files = [name for name in staged.split("\0") if name]
            if not files and not allow_empty:
                return Commit(None, [], None, oversized)
            args = ["commit", "-q", "--no-verify", "-m", message]
            if allow_empty:
                args.append("--allow-empty")
            await self.run(*args, env=await author, author_resolved=True)
        finally:
            author.cancel()  # when it is not needed after all (or the commit failed)
        commit, branch = await self.head_and_branch()
        # An oversized file the index already held (staged by hand) is in the commit after all.
        committed = set(files)
        return Commit(commit, files, branch, [f for f in oversized if f.path not in committed])

    async def files_in_commit(self, commit: str) -> list[str]:
        out = (await self.run("show", "-z", "--name-only", "--pretty=format:", commit)).stdout
        return [name for name in out.split("\0") if name]

    async def changed_since(self, start: str) -> list[str]:
        """Files that differ from `start`, committed or not, untracked ones included."""
        diff, untracked = (
            result.stdout
            for result in await asyncio.gather(
                self.run("diff", "-z", "--name-only", start),
                self.run("ls-files", "-z", "--others", "--exclude-standard"),
            )
        )
        return sorted({name for name in (*diff.split("\0"), *untracked.split("\0")) if name})

    async def changes_between(
        self, start: str, end: str = "HEAD", *, skipped: list[SkippedFile] | None = None
    ) -> FileChanges:
        """Files created, modified and deleted between two commits, as git sees them; ending at
        HEAD, also the files in the work tree that keen's commits left out for their size
        (`skipped`, when the caller's `commit` has just found them)."""
        out = (await self.run("diff", "-z", "--name-status", "--no-renames", start, end)).stdout
        created: list[str] = []
        modified: list[str] = []
        deleted: list[str] = []
        fields = out.split("\0")
        for status, name in zip(fields[::2], fields[1::2], strict=False):
            bucket = {"A": created, "D": deleted}.get(status[:1], modified)
            bucket.append(name)
        if skipped is None:
            skipped = await self.oversized_changes() if end == "HEAD" else []
        return FileChanges(created=created, modified=modified, deleted=deleted, skipped=skipped)

    async def init(self) -> None:
        await self.run("init", "-q")


@dataclass(frozen=True)
class WorkspacePlan:
    """What preparing a workspace will do (or why it is refused), found without changing it."""

    path: Path
    action: Literal["use", "init", "first_snapshot", "snapshot", "refuse"]
    refusal: str | None = None  # the `WorkspaceError` a run would raise
    note: str | None = None  # worth telling before the run starts


async def plan_workspace(path: Path, *, allow_dirty: bool) -> WorkspacePlan:
    """Decide how `path` becomes the workspace (SPEC 3.5), reading only.

    Not a repository: `git init` and a first snapshot. A folder inside a repository is refused
    (keen never nests a repository in the user's, and works at the top of one), unless that
    repository ignores the folder, which then gets a repository of its own. A detached HEAD is
    refused (the work would be on no branch), a dirty tree too unless `allow_dirty`, which
    commits it as a snapshot first so the person's changes and the agent's stay apart.
    """
    path = path.resolve()
    top = await _enclosing_toplevel(path)
    if top is None:
        return WorkspacePlan(path, "init")
    if top != path:
        relative = path.relative_to(top).as_posix()
        ignored = await GitRepo(top).run("check-ignore", "-q", "--", f"{relative}/", check=False)
        if not ignored.ok:
            return WorkspacePlan(
                path,
                "refuse",
                refusal=f"{path} is inside the git repository {top}; keen works at the top of a "
                f"repository and never makes one inside yours: use --dir {top} (or a folder outside it)",
            )
        note = f"{path} is ignored by the git repository {top}: keen makes it a repository of its own"
        return WorkspacePlan(path, "init", note=note)
    repo = GitRepo(path)
    if not await repo.has_commits():
        return WorkspacePlan(path, "first_snapshot")
    if await repo.current_branch() is None:
        head = (await repo.head())[:10]
        return WorkspacePlan(
            path,
            "refuse",
            refusal=f"HEAD is detached in {path} (at {head}): the agent's commits would be on no branch; "
            "check out a branch first (git switch -c NAME)",
        )
    changed = await repo.status_porcelain()
    if not changed:
        return WorkspacePlan(path, "use")
    if not allow_dirty:
        return WorkspacePlan(
            path,
            "refuse",
            refusal=f"the work tree in {path} has {len(changed)} uncommitted change(s); commit or stash "
            "them, or pass --allow-dirty to snapshot them first",
        )
    return WorkspacePlan(
        path, "snapshot", note=f"{len(changed)} uncommitted change(s) are committed first as a snapshot"
    )


async def _enclosing_toplevel(path: Path) -> Path | None:
    """The top of the git work tree holding `path` (or its nearest existing folder), if any."""
    existing = path
    while not existing.is_dir() and existing != existing.parent:
        existing = existing.parent
    result = await GitRepo(existing).run("rev-parse", "--show-toplevel", check=False)
    return Path(result.stdout.strip()).resolve() if result.ok and result.stdout.strip() else None


async def ensure_repository(path: Path, *, allow_dirty: bool) -> tuple[GitRepo, str, WorkspacePlan]:
    """Make `path` the workspace as `plan_workspace` decides (creating the folder only once it is
    accepted) and return it with its start commit and the plan."""
    plan = await plan_workspace(path, allow_dirty=allow_dirty)
    if plan.refusal is not None:
        raise WorkspaceError(plan.refusal)
    plan.path.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(plan.path)
    if plan.action == "init":
        await repo.init()
    if plan.action in ("init", "first_snapshot"):
        await repo.commit_all("keen: initial snapshot of the workspace", allow_empty=True)
    elif plan.action == "snapshot":
        await repo.commit_all("keen: snapshot of uncommitted changes before the session")
    return repo, await repo.head(), plan


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

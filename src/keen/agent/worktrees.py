"""Children's git worktrees: made, snapshotted, restored, reused and removed.

Checking out every file of a project is most of what a summon costs, so worktrees live on a
memory file system where there is one (`worktrees_root`), and the worktree of a child that has
ended is parked (cleaned, its HEAD detached) for the next child, which moves it to its own path
and checks out its own branch there: only the files that differ are written. What a child
changes is not lost if the machine restarts: after each tool call that may write, its work
tree is snapshotted into a ref in the repository (on disk), and a worktree restored after a
restart gets those changes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from keen.errors import WorkspaceError
from keen.gitrepo import GitRepo, git_env

MEMORY_FS = Path("/dev/shm")


def worktrees_root(keen_home: Path) -> Path:
    """Where children's worktrees go: a folder of this keen home on tmpfs when the machine has
    one, else `$KEEN_HOME/worktrees`."""
    if MEMORY_FS.is_dir() and os.access(MEMORY_FS, os.W_OK | os.X_OK):
        home = hashlib.sha256(str(keen_home.resolve()).encode()).hexdigest()[:16]
        return MEMORY_FS / f"keen-{os.getuid()}" / home
    return keen_home / "worktrees"


def volatile(path: Path) -> bool:
    """Whether worktrees under `path` are lost when the machine restarts (so need snapshots)."""
    return path.is_relative_to(MEMORY_FS)


SNAPSHOT_INDEX = "keen-snapshot-index"
# What the git directory of a worktree holds after ordinary work and commits. One holding
# anything else (a merge or rebase in progress, a lock, a sparse checkout, its own config) is
# removed rather than reused.
PLAIN_GIT_DIR = frozenset({"HEAD", "ORIG_HEAD", "commondir", "gitdir", "index", "logs", "COMMIT_EDITMSG"})


def snapshot_ref(root_short_id: str, branch_name: str) -> str:
    return f"refs/keen/{root_short_id}/{branch_name}/snapshot"


def snapshot_refs(root_short_id: str) -> str:
    """The prefix of every snapshot ref of a root session's tree."""
    return f"refs/keen/{root_short_id}/"


async def create(
    repo: GitRepo, path: Path, git_branch: str, start: str = "HEAD", spare: tuple[Path, Path] | None = None
) -> Path:
    """A new worktree on a new branch from `start`; returns its git directory. `spare`: a
    parked worktree and its git directory, reused when it can be (else removed). What a crash
    left of an earlier try (the branch, a worktree on it) is removed first: no child ran
    there, its child.spawned was never recorded. Usually there is none, and one `git
    worktree add` is all it takes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if spare is not None and not path.exists():
        if await _reuse(repo, spare[0], path, git_branch, start):
            return spare[1]
        await remove(repo, spare[0])
    if not path.exists():
        added = await repo.run("worktree", "add", "-q", "-b", git_branch, str(path), start, check=False)
        if added.ok:
            return git_dir_of(path)
    await remove(repo, path)
    for other in await _worktrees_on(repo, git_branch):
        await remove(repo, other)
    if (await repo.run("rev-parse", "--verify", "-q", f"refs/heads/{git_branch}", check=False)).ok:
        await repo.run("branch", "-D", git_branch, check=False)
    await repo.run("worktree", "add", "-q", "-b", git_branch, str(path), start)
    return git_dir_of(path)


async def _reuse(repo: GitRepo, spare: Path, path: Path, git_branch: str, start: str) -> bool:
    """Move a parked worktree to `path` and check out a new branch from `start` there (a
    parked worktree has no untracked file, so it then holds exactly what a new one would)."""
    if not (await repo.run("worktree", "move", str(spare), str(path), check=False)).ok:
        return False
    checkout = await GitRepo(path).run("checkout", "-q", "-f", "-b", git_branch, start, check=False)
    return checkout.ok


async def park(path: Path, git_dir: Path | None) -> bool:
    """Ready the worktree of a child that has ended for another child: HEAD detached, so the
    branch is free for the parent's `git` tool, and every file that is not committed on it
    removed (ignored ones included). `git_dir`: the one git made it with (None: unknown).
    False when it cannot be reused (the caller removes it)."""
    if git_dir is None:
        return False
    try:
        if git_dir_of(path) != git_dir or not set(os.listdir(git_dir)) <= PLAIN_GIT_DIR | {SNAPSHOT_INDEX}:
            return False
        (git_dir / SNAPSHOT_INDEX).unlink(missing_ok=True)  # a stat cache of the old child's files
    except OSError:
        return False
    worktree = GitRepo(path)
    if not (await worktree.run("checkout", "-q", "--detach", check=False)).ok:
        return False
    return (await worktree.run("clean", "-q", "-ffdx", check=False)).ok


def git_dir_of(path: Path) -> Path:
    """The git directory of a worktree from its `.git` file (which the agent can rewrite: read
    it when git has just made the worktree, or to compare with what it was then)."""
    text = (path / ".git").read_text().strip().removeprefix("gitdir:").strip()
    return (path / text).resolve()  # `text` may be relative to the worktree


async def restore(repo: GitRepo, path: Path, git_branch: str, snapshot: str) -> Path:
    """The worktree of an interrupted child again, with its last snapshot's changes; returns
    its git directory."""
    await repo.run("worktree", "prune", check=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = await repo.run("worktree", "add", "-q", str(path), git_branch, check=False)
    if not result.ok:
        raise WorkspaceError(f"cannot restore the worktree of {git_branch}: {result.stderr.strip()}")
    if (await repo.run("rev-parse", "--verify", "-q", snapshot, check=False)).ok:
        await GitRepo(path).run("restore", f"--source={snapshot}", "--worktree", "--", ":/", check=False)
    return git_dir_of(path)


async def snapshot(worktree: GitRepo, ref: str, git_dir: Path | None = None) -> None:
    """Record the worktree's files (tracked and untracked, ignored ones left out) in `ref`, as
    a tree, without touching its index or branch. `git_dir`: the worktree's git directory when
    the caller knows it (else git is asked)."""
    if git_dir is None:
        git_dir = Path((await worktree.run("rev-parse", "--absolute-git-dir")).stdout.strip())
    index = git_dir / SNAPSHOT_INDEX
    env = {**git_env(), "GIT_INDEX_FILE": str(index)}
    if not index.exists() and (git_dir / "index").exists():
        index.write_bytes((git_dir / "index").read_bytes())  # its stat data makes `add` fast
    await worktree.run("add", "-A", env=env)
    tree = (await worktree.run("write-tree", env=env)).stdout.strip()
    await worktree.run("update-ref", ref, tree)


async def remove(repo: GitRepo, path: Path) -> None:
    """Remove a worktree (its folder and git's record of it); git's records of worktrees whose
    folder is gone are pruned when this one's was."""
    if path.exists() and (await repo.run("worktree", "remove", "--force", str(path), check=False)).ok:
        return
    await repo.run("worktree", "prune", check=False)


async def remove_all(repo: GitRepo, paths: list[Path], snapshots: list[str]) -> None:
    """Remove several children's worktrees at once (a cancel must end quickly), and their snapshots."""
    removed = await asyncio.gather(
        *(repo.run("worktree", "remove", "--force", str(p), check=False) for p in paths if p.exists())
    )
    if len(removed) < len(paths) or not all(r.ok for r in removed):
        await repo.run("worktree", "prune", check=False)
    await asyncio.gather(*(repo.run("update-ref", "-d", ref, check=False) for ref in snapshots))


async def _worktrees_on(repo: GitRepo, git_branch: str) -> list[Path]:
    listing = (await repo.run("worktree", "list", "--porcelain", check=False)).stdout
    found, current = [], None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{git_branch}" and current is not None:
            found.append(current)
    return found

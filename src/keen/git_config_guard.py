"""Refuse to run keen's own git where the repository's own configuration could run a command.

keen's git runs outside the sandbox, in repositories the agent can write: with the sandbox
off (`KEEN_SANDBOX=none`), in a folder the agent's commands have changed, or in a repository
whose configuration was written before keen ever saw it. A driver there (`filter.<name>.clean`,
`merge.<name>.driver`, `gpg.program`, ...) would make keen's commit, status or merge run it
unsandboxed. Drivers have names the configuration chooses, so no `-c` override can switch them
all off: keen reads the effective configuration (includes followed, as git does) and refuses
while a repository-local file sets one.

Only the repository's own files count (scopes `local` and `worktree`, and what they include):
the system and global files are the person's own, and a local entry that repeats one of
theirs with the same value runs nothing they do not run already (`git lfs install --local`).
The verdict is kept per repository until one of the files it depends on changes.

A nested repository the index holds (a submodule's work tree, or a repository the agent made
and added) is asked for its own status by `git add` in the outer one, so its configuration, all
work-tree content, is checked the same way before git runs in the outer repository.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from keen.errors import WorkspaceError
from keen.proc import run_process

LISTING_TIMEOUT_SECONDS = 30.0
# Keys whose value is a program git runs (or, core.worktree, a directory git then works in).
_RISKY = re.compile(
    r"""(
        filter\..+\.(clean|smudge|process)
      | diff\..+\.(textconv|command)
      | diff\.external
      | merge\..+\.driver
      | gpg\.program | gpg\.[^.]+\.program
      | core\.worktree
    )""",
    re.VERBOSE,
)
_INCLUDE = re.compile(r"include\.path|includeif\..+\.path")
_REPOSITORY_SCOPES = frozenset({"local", "worktree"})
_PERSONAL_SCOPES = frozenset({"system", "global"})

Fingerprint = tuple[tuple[str, int, int, int] | None, ...]


@dataclass(frozen=True)
class _Verdict:
    watched: tuple[Path, ...]  # the files (present or not) the verdict depends on
    fingerprint: Fingerprint


_verdicts: dict[Path, _Verdict] = {}
# The index entry mode of a gitlink (0o160000), as the index stores it: where these bytes do not
# occur, the index holds no nested repository and git need not be asked.
_GITLINK_MODE = (0o160000).to_bytes(4, "big")
_gitlinks: dict[Path, tuple[Fingerprint, tuple[Path, ...]]] = {}


def risky_entries(listing: str) -> list[tuple[str, str]]:
    """(key, file) of each repository-local entry that names a program, from the output of
    `git config --list --includes --show-scope --show-origin -z`."""
    entries = _parse(listing)
    personal = {(key, value) for scope, _, key, value in entries if scope in _PERSONAL_SCOPES}
    return [
        (key, origin)
        for scope, origin, key, value in entries
        if scope in _REPOSITORY_SCOPES and _RISKY.fullmatch(key) and (key, value) not in personal
    ]


def _parse(listing: str) -> list[tuple[str, str, str, str]]:
    """(scope, origin file, key, value) per entry; git lower-cases section and key names."""
    fields = listing.split("\0")
    out = []
    for scope, origin, entry in zip(fields[::3], fields[1::3], fields[2::3], strict=False):
        key, _, value = entry.partition("\n")
        out.append((scope, origin.removeprefix("file:"), key, value))
    return out


def _watched(path: Path, listing: str) -> tuple[Path, ...]:
    """What can change the repository's configuration without git's listing showing it first:
    the `.git` entry, a `commondir` redirection, the config files git would read next (which
    may not exist yet), the files they include, and the files the listing came from."""
    files = [path / ".git"]
    for gitdir in _git_dirs(path):
        files += [gitdir / "commondir", gitdir / "config", gitdir / "config.worktree"]
    for scope, origin, key, value in _parse(listing):
        if scope not in _REPOSITORY_SCOPES:
            continue
        source = _origin_file(path, origin)
        files.append(source)
        if _INCLUDE.fullmatch(key) and value:
            target = Path(os.path.expanduser(value))
            files.append(target if target.is_absolute() else source.parent / target)
    return tuple(dict.fromkeys(files))


def _origin_file(path: Path, origin: str) -> Path:
    """The file an entry came from (git names it relative to where it runs)."""
    return Path(os.path.normpath(path / origin))


def _git_dirs(path: Path) -> list[Path]:
    """The git directory of the work tree at `path` and its common directory, as far as the
    files say (a hint for what to watch: git's own listing is what the verdict believes)."""
    dot_git = path / ".git"
    if dot_git.is_dir():
        linked = read_commondir(dot_git)
        return [dot_git] if linked is None else [dot_git, linked]
    found = linked_worktree(path)
    return [] if found is None else list(found)


def linked_worktree(path: Path) -> tuple[Path, Path] | None:
    """(git directory, common directory) as the `.git` file of a linked worktree at `path` and
    its `commondir` file say, or None when `.git` is no such file. Nothing is verified: the
    agent can write both files."""
    dot_git = path / ".git"
    try:
        if dot_git.is_symlink() or not dot_git.is_file():
            return None
        text = dot_git.read_text(errors="replace").strip()
        if not text.startswith("gitdir:"):
            return None
        admin = (path / text.removeprefix("gitdir:").strip()).resolve()
    except (OSError, ValueError):
        return None
    common = read_commondir(admin)
    return None if common is None else (admin, common)


def read_commondir(gitdir: Path) -> Path | None:
    """The common directory a git directory's `commondir` file names, if it has one."""
    try:
        return (gitdir / (gitdir / "commondir").read_text(errors="replace").strip()).resolve()
    except (OSError, ValueError):
        return None


def _fingerprint(files: Sequence[Path]) -> Fingerprint:
    """(device and inode, size, mtime) per file, None where absent. A directory (`.git`)
    counts by its identity only: git creates and removes lock files in it all the time."""
    out: list[tuple[str, int, int, int] | None] = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            out.append(None)
            continue
        if stat.S_ISDIR(st.st_mode):
            out.append(("d", st.st_dev, st.st_ino, 0))
        else:
            out.append(("f", st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


async def ensure_safe_config(
    path: Path, git_argv: Sequence[str], env: Mapping[str, str], *, _outer: frozenset[Path] = frozenset()
) -> None:
    """Raise `WorkspaceError` when git at `path` would read a repository-local entry that runs a
    program, there or in a nested repository its index holds. `git_argv` is how keen starts
    git (its `-c` options); `env` what git runs with."""
    key = path.resolve()
    if key in _outer:  # a forged index can make a repository hold itself
        return
    known = _verdicts.get(key)
    if known is None or _fingerprint(known.watched) != known.fingerprint:
        await _check(key, git_argv, env)
    for nested in await _nested_repositories(key, git_argv, env):
        await ensure_safe_config(nested, git_argv, env, _outer=_outer | {key})


async def _check(key: Path, git_argv: Sequence[str], env: Mapping[str, str]) -> None:
    """List the configuration git reads at `key`: refuse, or remember the verdict."""
    # Watched before listing: a change made while git lists is seen the next time.
    before = _watched(key, "")
    before_print = _fingerprint(before)
    argv = [*git_argv, "config", "--list", "--includes", "--show-scope", "--show-origin", "-z"]
    result = await run_process(argv, cwd=key, timeout=LISTING_TIMEOUT_SECONDS, env=env)
    if not result.ok:
        _verdicts.pop(key, None)
        detail = "timed out" if result.timed_out else result.stderr.strip()
        raise WorkspaceError(f"git cannot read the configuration of {key}: {detail}")
    if risky := risky_entries(result.stdout):
        _verdicts.pop(key, None)
        name, origin = risky[0]
        file = _origin_file(key, origin)
        raise WorkspaceError(
            f"keen runs no git in {key}: the repository's own configuration sets {name} "
            f"(in {file}), a program git would run outside keen's sandbox. Remove it "
            f"(git config --file {file} --unset-all {name}), or set it in your global "
            "configuration (~/.gitconfig) if it is yours."
        )
    watched = _watched(key, result.stdout)
    if _fingerprint(before) == before_print:  # else changed while listing: decide again next time
        _verdicts[key] = _Verdict(watched, _fingerprint(watched))


async def _nested_repositories(
    path: Path, git_argv: Sequence[str], env: Mapping[str, str]
) -> tuple[Path, ...]:
    """The work trees of the gitlinks in the index at `path` that are repositories."""
    dirs = _git_dirs(path)
    if not dirs:
        return ()
    index = dirs[0] / "index"
    print_now = _fingerprint([index])
    known = _gitlinks.get(path)
    if known is not None and known[0] == print_now:
        return known[1]
    try:
        has_gitlink = _GITLINK_MODE in index.read_bytes()
    except OSError:
        has_gitlink = False
    found: tuple[Path, ...] = ()
    if has_gitlink:
        argv = [*git_argv, "ls-files", "--stage", "-z"]
        listed = await run_process(argv, cwd=path, timeout=LISTING_TIMEOUT_SECONDS, env=env)
        entries = [e.partition("\t") for e in listed.stdout.split("\0") if e]
        links = [path / name for info, _, name in entries if info.startswith("160000 ")]
        found = tuple(link for link in links if (link / ".git").exists())
    _gitlinks[path] = (print_now, found)
    return found

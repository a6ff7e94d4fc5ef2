"""Vision files: the Markdown `keen manifest` (and `manifest` in a conversation) writes for
`keen breathe -f`.

Every file written here is accepted by `keen breathe -f`: its whole text is checked as a vision
before it is written, and a long discussion context is cut (oldest part first) to fit.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from keen import __version__
from keen.agent.prompts.render import render
from keen.agent.vision import MAX_VISION_CHARS, check_vision
from keen.errors import InputError
from keen.gitrepo import GitRepo
from keen.text import clip

DEFAULT_NAME = "vision.md"
TITLE_CHARS = 80
CUT_NOTE_ROOM = 300  # room for the discussion heading and its "left out" note


@dataclass
class VisionFile:
    path: Path
    text: str
    run_command: str  # the `keen breathe -f` line the file names


@dataclass
class ProjectFacts:
    directory: Path
    name: str
    is_repo: bool = False
    branch: str | None = None
    remote: str | None = None


async def project_facts(directory: Path) -> ProjectFacts:
    """The project's name, and its git branch and remote when it is a repository."""
    directory = directory.resolve()
    facts = ProjectFacts(directory=directory, name=directory.name)
    repo = GitRepo(directory)
    if not directory.is_dir() or not await repo.is_repo():
        return facts
    facts.is_repo = True
    facts.branch = await repo.current_branch()
    remotes = (await repo.run("remote", check=False)).stdout.split()
    if remotes:
        name = "origin" if "origin" in remotes else remotes[0]
        url = (await repo.run("remote", "get-url", name, check=False)).stdout.strip()
        if url:
            facts.remote = f"{name} {without_credentials(url)}"
    return facts


def without_credentials(url: str) -> str:
    """A remote URL with any user:token part removed (it must never land in a file)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def default_output(directory: Path) -> Path:
    """`vision.md` in the directory, or the first free `vision-N.md`: never an existing file."""
    candidate = directory / DEFAULT_NAME
    number = 2
    while candidate.exists():
        candidate = directory / f"vision-{number}.md"
        number += 1
    return candidate


def check_output(output: Path) -> Path:
    """An explicit `--output`: refused when it exists (nothing is overwritten) or has no folder."""
    path = output.expanduser().resolve()
    if path.exists():
        raise InputError(f"{path} already exists; choose another --output or move the file away first")
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: the folder {path.parent} does not exist")
    return path


def breathe_command_line(
    path: Path, directory: Path, *, allow_dirty: bool = False, options: Sequence[str] = ()
) -> str:
    """The command that runs a vision file, correct from any current directory (`options`:
    more `keen breathe` arguments, quoted here)."""
    line = f"keen breathe -f {shlex.quote(str(path))} --dir {shlex.quote(str(directory))}"
    if options:
        line += " " + shlex.join(options)
    return line + " --allow-dirty" if allow_dirty else line


def needs_allow_dirty(path: Path, facts: ProjectFacts) -> bool:
    """A vision file inside the project's git repository is an uncommitted change until it is
    committed, so the command that runs it needs `--allow-dirty` (which commits it first)."""
    return facts.is_repo and path.resolve().is_relative_to(facts.directory)


def title_of(statement: str) -> str:
    """The first line of a vision, without Markdown heading marks, as a title."""
    for line in statement.splitlines():
        text = " ".join(line.strip().lstrip("#").split())
        if text:
            return clip(text, TITLE_CHARS)
    return "Vision"


def render_vision_file(
    statement: str,
    *,
    facts: ProjectFacts,
    output: Path,
    origin: str,
    discussion: str | None = None,
    now: datetime | None = None,
) -> VisionFile:
    """The file's text, within the vision length limit (the discussion is cut to fit)."""
    statement = statement.strip()
    allow_dirty = needs_allow_dirty(output, facts)
    run_command = breathe_command_line(output, facts.directory, allow_dirty=allow_dirty)

    def build(discussion_text: str | None, cut: int) -> str:
        return render(
            "manifest.j2",
            title=title_of(statement),
            created=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
            version=__version__,
            origin=origin,
            directory=facts.directory,
            project=facts.name,
            branch=facts.branch,
            remote=facts.remote,
            statement=statement,
            discussion=discussion_text,
            discussion_cut=cut,
            run_command=run_command,
            uncommitted=allow_dirty,
        )

    bare = build(None, 0)
    if len(bare) > MAX_VISION_CHARS:
        over = len(bare) - MAX_VISION_CHARS
        raise InputError(
            f"the vision is too long for a vision file by {over:,} characters "
            f"(a vision file holds at most {MAX_VISION_CHARS:,})"
        )
    text = bare
    if discussion and discussion.strip():
        discussion = discussion.strip()
        room = MAX_VISION_CHARS - len(bare) - CUT_NOTE_ROOM
        if len(discussion) <= room:
            text = build(discussion, 0)
        elif room > 0:
            cut = len(discussion) - room
            text = build("…" + discussion[cut:], cut)
    return VisionFile(output, check_vision(text), run_command)


async def write_vision_file(
    statement: str,
    *,
    directory: Path,
    output: Path | None,
    origin: str,
    discussion: str | None = None,
) -> VisionFile:
    """Write the vision file; an existing file is never overwritten."""
    facts = await project_facts(directory)
    path = check_output(output) if output is not None else default_output(facts.directory)
    written = render_vision_file(statement, facts=facts, output=path, origin=origin, discussion=discussion)
    try:
        with path.open("x", encoding="utf-8") as handle:  # "x": a file that appeared meanwhile is kept
            handle.write(written.text + "\n")
    except FileExistsError:
        raise InputError(f"{path} already exists; choose another --output") from None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return written

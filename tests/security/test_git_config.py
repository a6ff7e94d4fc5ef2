"""Configuration an agent plants never makes keen's own git run a command.

keen's git runs outside the sandbox in the agent's repository. Inside bubblewrap the agent
cannot write the repository's configuration at all (config, info/, hooks/, a child's `.git`
file and the common repository's files); where it could (`KEEN_SANDBOX=none`, or configuration
that was there before the session), keen's git refuses to run while the repository's own
configuration names a program, and runs no pager, editor or transport whatever it names.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from helpers import call, complete, git, summon, turn
from keen.errors import WorkspaceError
from keen.gitrepo import GitRepo
from security.attack import AgentCall, commands, diverge


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file a planted command leaves when it runs (outside the repository)."""
    return tmp_path / "ran"


def evil_program(tmp_path: Path, marker: Path) -> Path:
    """A program that leaves the marker whatever arguments git gives it."""
    program = tmp_path / "evil.sh"
    program.write_text(f"#!/bin/sh\ntouch {marker}\ncat\n")
    program.chmod(0o755)
    return program


# -- inside the sandbox: the configuration is read-only ---------------------------------------


@pytest.mark.usefixtures("bwrap_only")
async def test_agent_cannot_change_the_repositorys_config_from_the_sandbox(
    agent_call: AgentCall, workspace: Path, marker: Path
) -> None:
    config = (workspace / ".git" / "config").read_bytes()
    attempts = [
        f"git config filter.x.clean 'touch {marker}; cat'",
        f"printf '[filter \"x\"]\\n\\tclean = touch {marker}\\n' >> .git/config",
        "echo '* filter=x' > .git/info/attributes",
        f"printf '#!/bin/sh\\ntouch {marker}\\n' > .git/hooks/post-commit",
        "mv .git .git-old && mkdir .git",
        "rm -f .git/config",
    ]

    for attempt in attempts:
        result = await agent_call("run_command", {"command": attempt})
        assert result.output["exit_code"] != 0, attempt

    assert (workspace / ".git" / "config").read_bytes() == config
    assert not (workspace / ".git" / "info" / "attributes").exists()
    assert not (workspace / ".git" / "hooks" / "post-commit").exists()


@pytest.mark.usefixtures("bwrap_only")
async def test_ordinary_git_still_works_in_the_sandbox(agent_call: AgentCall, workspace: Path) -> None:
    await agent_call("write_files", {"path": "a.txt", "content": "a\n"})
    steps: list[tuple[str, dict[str, object]]] = [
        ("git", {"action": "status"}),
        ("git", {"action": "add"}),
        ("git", {"action": "commit", "message": "add a"}),
        ("git", {"action": "checkout", "branch": "side", "create": True}),
        ("run_command", {"command": "echo b >> a.txt && git diff --stat && git commit -qam b"}),
        ("git", {"action": "checkout", "branch": "main"}),
        ("git", {"action": "merge", "branch": "side"}),
        ("git", {"action": "branch", "args": ["-d", "side"]}),
        (
            "run_command",
            {"command": "echo c >> a.txt && git stash -q && git stash pop -q && git log --oneline"},
        ),
    ]

    for name, raw in steps:
        result = await agent_call(name, raw)
        assert result.ok and result.output["exit_code"] == 0, (raw, result.error, result.output)

    assert git(workspace, "log", "-1", "--format=%s").strip() == "b"
    assert (workspace / "a.txt").read_text() == "a\nb\nc\n"


def test_planted_filter_never_runs_on_keens_commit(breathe, tmp_path: Path, marker: Path) -> None:
    run = breathe(
        commands(
            f"git config filter.x.clean 'touch {marker}; cat'",
            "echo '* filter=x' > .gitattributes",
        ),
        turn(call("write_files", path="work.txt", content="the agent's work\n")),
    )

    workspace = tmp_path / "w"
    assert run.tools[0]["output"]["exit_code"] != 0  # refused by the sandbox
    assert "filter" not in (workspace / ".git" / "config").read_text()
    assert "work.txt" in git(workspace, "show", "--name-only", "--format=", "HEAD").split()
    assert not marker.exists()


def test_child_cannot_change_the_common_repository(breathe, tmp_path: Path, marker: Path) -> None:
    common = "$(git rev-parse --git-common-dir)"
    run = breathe(
        agents={
            "main": [turn(summon("plant a filter from a child", "general")), complete("merged")],
            "summon-A": [
                commands(
                    f"git config filter.x.clean 'touch {marker}; cat'",
                    f"echo '* filter=x' > {common}/info/attributes",
                    f"echo /tmp > {common}/worktrees/*/commondir",
                    "echo 'gitdir: /tmp' > .git",
                ),
                turn(call("write_files", path="child.txt", content="from the child\n")),
                complete("child work"),
            ],
        }
    )

    planted = [tool for tool in run.tools if tool.get("output") and "exit_code" in tool["output"]]
    assert len(planted) == 4 and all(tool["output"]["exit_code"] != 0 for tool in planted)
    workspace = tmp_path / "w"
    assert "filter" not in (workspace / ".git" / "config").read_text()
    assert (workspace / "child.txt").read_text() == "from the child\n"  # committed and merged
    assert not marker.exists()


# -- keen's own git: a repository-local program is refused ------------------------------------


Plant = Callable[[Path, Path], None]
Act = Callable[[GitRepo], Awaitable[object]]


def _filter(repo: Path, program: Path) -> None:
    git(repo, "config", "filter.x.clean", str(program))
    (repo / ".gitattributes").write_text("* filter=x\n")


def _smudge(repo: Path, program: Path) -> None:
    git(repo, "config", "filter.x.smudge", str(program))
    (repo / ".git" / "info" / "attributes").write_text("* filter=x\n")


def _process(repo: Path, program: Path) -> None:
    git(repo, "config", "filter.x.process", str(program))
    (repo / ".gitattributes").write_text("* filter=x\n")


def _merge_driver(repo: Path, program: Path) -> None:
    diverge(repo, "README.md")
    git(repo, "config", "merge.x.driver", str(program))
    (repo / ".git" / "info" / "attributes").write_text("* merge=x\n")


def _gpg(repo: Path, program: Path) -> None:
    git(repo, "config", "commit.gpgSign", "true")
    git(repo, "config", "gpg.program", str(program))


def _ssh_signing(repo: Path, program: Path) -> None:
    git(repo, "config", "commit.gpgSign", "true")
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingKey", str(program))
    git(repo, "config", "gpg.ssh.program", str(program))


def _include(repo: Path, program: Path) -> None:
    (repo / "settings.cfg").write_text(f'[filter "x"]\n\tclean = {program}\n')  # a work-tree file
    git(repo, "config", "include.path", "../settings.cfg")
    (repo / ".gitattributes").write_text("* filter=x\n")


def _worktree_config(repo: Path, program: Path) -> None:
    git(repo, "config", "extensions.worktreeConfig", "true")
    git(repo, "config", "--worktree", "filter.x.clean", str(program))
    (repo / ".gitattributes").write_text("* filter=x\n")


def _commondir(repo: Path, program: Path) -> None:
    """`.git/commondir` sends git to a repository of the agent's making, config and all."""
    shutil.copytree(repo / ".git", repo / "other")
    git(repo, "--git-dir=other", "config", "filter.x.clean", str(program))
    (repo / ".git" / "commondir").write_text("../other\n")
    (repo / ".gitattributes").write_text("* filter=x\n")


def _nested(repo: Path, program: Path) -> None:
    """A repository inside the work tree, added as a gitlink: its config is work-tree content,
    writable from the sandbox, and git in the outer repository asks it for its status."""
    sub = repo / "sub"
    sub.mkdir()
    git(sub, "init", "-q")
    (sub / "s.txt").write_text("s\n")
    (sub / ".gitattributes").write_text("* filter=x\n")
    git(sub, "add", "-A")
    git(sub, "commit", "-qm", "nested")
    git(sub, "config", "filter.x.clean", str(program))
    git(repo, "-c", "filter.x.clean=cat", "add", "sub")
    git(repo, "-c", "filter.x.clean=cat", "commit", "-qm", "gitlink")
    os.utime(sub / "s.txt", (0, 0))  # stat-dirty: git must read it again


async def _commit(repo: GitRepo) -> object:
    (repo.path / "work.txt").write_text("work\n")
    return await repo.commit_all("keen: checkpoint")


async def _checkout(repo: GitRepo) -> object:
    (repo.path / "README.md").unlink()
    return await repo.run("checkout", "-q", "-f", "-b", "fresh", "HEAD")


async def _status(repo: GitRepo) -> object:
    (repo.path / "README.md").write_text("# changed\n")
    return await repo.status_porcelain()


async def _merge(repo: GitRepo) -> object:
    return await repo.run("merge", "--no-ff", "--no-edit", "side", check=False)


PLANTED: dict[str, tuple[Plant, Act, str]] = {
    "filter clean on commit": (_filter, _commit, "filter.x.clean"),
    "filter smudge on checkout": (_smudge, _checkout, "filter.x.smudge"),
    "filter process on status": (_process, _status, "filter.x.process"),
    "merge driver on merge": (_merge_driver, _merge, "merge.x.driver"),
    "gpg program on commit": (_gpg, _commit, "gpg.program"),
    "ssh signing program on commit": (_ssh_signing, _commit, "gpg.ssh.program"),
    "included work-tree file": (_include, _commit, "filter.x.clean"),
    "worktree config": (_worktree_config, _commit, "filter.x.clean"),
    "commondir redirection": (_commondir, _commit, "filter.x.clean"),
    "nested repository on status": (_nested, _status, "filter.x.clean"),
    "nested repository on commit": (_nested, _commit, "filter.x.clean"),
}


@pytest.mark.parametrize("kind", list(PLANTED))
async def test_planted_program_never_runs_in_keens_git(
    kind: str, repo: Path, tmp_path: Path, marker: Path
) -> None:
    plant, act, key = PLANTED[kind]
    plant(repo, evil_program(tmp_path, marker))

    with pytest.raises(WorkspaceError, match=key.replace(".", r"\.")) as refused:
        await act(GitRepo(repo))

    assert "runs no git" in str(refused.value)
    assert not marker.exists()


async def test_core_worktree_cannot_send_keens_git_elsewhere(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.txt").write_text("not the agent's\n")
    git(repo, "config", "core.worktree", str(elsewhere))

    with pytest.raises(WorkspaceError, match=r"core\.worktree"):
        await GitRepo(repo).commit_all("keen: checkpoint")

    assert "private.txt" not in git(repo, "--work-tree=.", "ls-tree", "-r", "--name-only", "HEAD")


async def test_configuration_changed_after_a_clean_check_is_checked_again(
    repo: Path, tmp_path: Path, marker: Path
) -> None:
    keen = GitRepo(repo)
    git(repo, "config", "include.path", "../later.cfg")  # names a file that is not there yet
    assert await _commit(keen) is not None
    (repo / ".gitattributes").write_text("* filter=x\n")
    (repo / "later.cfg").write_text(f'[filter "x"]\n\tclean = {evil_program(tmp_path, marker)}\n')

    with pytest.raises(WorkspaceError, match=r"filter\.x\.clean .*later\.cfg"):
        await keen.commit_all("keen: checkpoint")

    (repo / "later.cfg").unlink()
    assert await keen.commit_all("keen: without the include's filter") is not None
    assert not marker.exists()


async def test_filters_of_the_persons_global_config_still_run(
    repo: Path, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter from the global config is the person's own (git-lfs): keen's git runs it, and a
    repository-local copy of it (`git lfs install --local`) too."""
    program = evil_program(tmp_path, marker)
    personal = tmp_path / "gitconfig"
    personal.write_text(f'[filter "lfs"]\n\tclean = {program}\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(personal))
    git(repo, "config", "filter.lfs.clean", str(program))
    (repo / ".gitattributes").write_text("*.bin filter=lfs\n")
    (repo / "data.bin").write_text("data\n")

    assert await GitRepo(repo).commit_all("keen: checkpoint") is not None
    assert marker.exists()


async def test_planted_transport_never_runs_in_keens_git(repo: Path, tmp_path: Path, marker: Path) -> None:
    git(repo, "config", "protocol.ext.allow", "always")
    git(repo, "remote", "add", "origin", f"ext::sh -c touch% {marker}")
    git(repo, "config", "core.sshCommand", f"touch {marker}; false")

    for url in ("origin", "ssh://example.invalid/repo.git"):
        result = await GitRepo(repo).run("fetch", "-q", url, check=False)
        assert not result.ok

    assert not marker.exists()


async def test_a_clone_is_not_refused_for_the_repository_around_it(repo: Path, tmp_path: Path) -> None:
    """`clone` reads no configuration of the repository its folder is in (keen's home may be in
    the person's own repository, with a filter of theirs)."""
    around = tmp_path / "around"
    around.mkdir()
    git(around, "init", "-q")
    git(around, "config", "filter.crypt.smudge", "never-run-by-a-clone")
    source = f"file://{repo}"

    result = await GitRepo(around).run(
        "-c", "protocol.file.allow=always", "clone", "-q", "--", source, str(around / "copy"), check=False
    )

    assert result.ok, result.stderr
    assert (around / "copy" / "README.md").exists()

"""The prompt loop of `keen converse` and `keen manifest --interactive`.

One `LineReader` (cli/chat_terminal.py) reads standard input for the whole command (prompts and
y/n questions alike), so a pipe works as well as a terminal and no two readers ever compete for the same input. The
conversation's async work runs on one event loop (`asyncio.Runner`) kept between prompts; a
`breathe` run goes through `run_new_session`, the same machinery as `keen breathe`, and the chat
continues when it ends.

Words at the prompt: `help`, `status`, `clear`, `exit`/`quit`, and per mode `manifest` and
`breathe` (converse) or `done` (manifest). Ctrl-D leaves like `exit`; Ctrl-C interrupts a reply,
and pressed twice in a row at the prompt leaves with exit code 130. SIGTERM leaves with 130 too,
the conversation's session closed as cancelled.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from keen.cli.chat_terminal import ChatView, LineReader
from keen.cli.common import EXIT_INTERRUPTED, EXIT_OK, stdout_console
from keen.errors import InputError, KeenError

if TYPE_CHECKING:
    from keen.config import Settings
    from keen.runner.options import RunLimits

Mode = Literal["converse", "manifest"]
LOCAL_USER = "local user"
FALLBACK_LABEL = "(fallback: the model could not synthesize a vision; built from your messages)"

HELP: dict[Mode, list[tuple[str, str]]] = {
    "converse": [
        ("help", "show these words"),
        ("status", "user, mode, model and cost so far"),
        ("clear", "forget the conversation and start afresh"),
        ("manifest", "write a vision file from the conversation"),
        ("breathe", "show the vision from the conversation and, if you say y, run it with keen's agent"),
        ("exit, quit", "leave (Ctrl-D too)"),
    ],
    "manifest": [
        ("help", "show these words"),
        ("status", "user, mode, model and cost so far"),
        ("clear", "forget the conversation and start afresh"),
        ("done", "write the vision file from the conversation and leave"),
        ("exit, quit", "leave without writing a file (Ctrl-D too)"),
    ],
}


def chat_workspace(directory: Path | None) -> Path:
    """The folder to talk about: it must exist (a conversation creates nothing)."""
    path = (directory or Path.cwd()).expanduser().resolve()
    if not path.exists():
        raise InputError(f"--dir {path} does not exist")
    if not path.is_dir():
        raise InputError(f"--dir {path} is not a directory")
    return path


@dataclass
class ChatConfig:
    settings: Settings
    workspace: Path
    model: str
    budget: Decimal
    mode: Mode = "converse"
    output: Path | None = None  # manifest mode: where `done` writes (None: the default name)
    first_message: str | None = None
    run_limits: RunLimits | None = None  # converse: limits of the runs `breathe` starts (None: defaults)


@dataclass
class _State:
    interrupts: int = 0
    terminated: bool = False  # SIGTERM arrived: leave at the next prompt, session cancelled
    runs_cost: Decimal = Decimal(0)
    runs: list[str] = field(default_factory=list)  # "short id: status" of agent runs from the chat


class Chat:
    """One conversation at the prompt, from the first word to `exit`."""

    def __init__(self, config: ChatConfig, console: Console | None = None) -> None:
        self.config = config
        self.console = console or stdout_console()
        self.reader = LineReader(self.console)
        self.view = ChatView(self.console)
        self.state = _State()
        self.loop: asyncio.Runner | None = None
        self.agent: Any = None
        self.service: Any = None
        self.conversation: Any = None  # the open conversation session

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        previous = signal.getsignal(signal.SIGTERM)
        with asyncio.Runner() as loop:
            self.loop = loop
            status, code = "completed", EXIT_OK
            try:
                self._terminate_like_ctrl_c()
                loop.run(self._open())
                self._welcome()
                if self.config.first_message:
                    self._say(self.config.first_message)
                code = self._prompt_loop()
                if code == EXIT_INTERRUPTED:
                    status = "cancelled"
            except KeyboardInterrupt:
                status, code = "cancelled", EXIT_INTERRUPTED
            except BaseException:
                status = "failed"
                raise
            finally:
                loop.run(self._close(status))
                signal.signal(signal.SIGTERM, previous)
        return code

    def _terminate_like_ctrl_c(self) -> None:
        """SIGTERM interrupts whatever runs (a prompt or a reply) the way Ctrl-C does, then the
        chat leaves with its session closed as cancelled instead of left running."""

        def handler(signum: int, frame: Any) -> None:
            self.state.terminated = True
            # Call the SIGINT handler in place now (raise_signal would only be seen at the next
            # check, which a blocked prompt never makes): at the prompt it is Python's, raising
            # KeyboardInterrupt; during a reply it is asyncio's, cancelling the reply.
            interrupt = signal.getsignal(signal.SIGINT)
            if callable(interrupt):
                interrupt(signal.SIGINT, frame)
            else:
                raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)

    async def _open(self) -> None:
        from keen.runner.sessions import SessionService

        self.service = await SessionService(self.config.settings).open()
        self.conversation = await self.service.open_conversation(
            self.config.workspace, self.config.model, self.config.budget
        )
        self.agent = self.conversation.agent
        self.service.watch(self.view.handle, self.agent.session_id)

    async def _close(self, status: str) -> None:
        try:
            if self.conversation is not None:
                await self.conversation.close(status)
        finally:
            if self.service is not None:
                await self.service.close()

    def _welcome(self) -> None:
        words = ", ".join(w for w, _ in HELP[self.config.mode])
        scripted = (
            "  (scripted model: replies come from a script)"
            if self.config.model.startswith("scripted:")
            else ""
        )
        self.console.print(
            Text(
                f"keen {self.config.mode} · {self.config.workspace} · {self.config.model}{scripted}",
                style="dim",
            ),
            soft_wrap=True,
        )
        self.console.print(Text(f"Ask about the project. Words: {words}.", style="dim"), soft_wrap=True)

    # -- the loop --------------------------------------------------------------------------

    def _prompt_loop(self) -> int:
        handlers: dict[str, Callable[[], int | None]] = {
            "help": self._help,
            "status": self._status,
            "clear": self._clear,
            "exit": self._leave,
            "quit": self._leave,
        }
        if self.config.mode == "converse":
            handlers |= {"manifest": self._manifest, "breathe": self._breathe}
        else:
            handlers |= {"done": self._done}
        while True:
            if self.state.terminated:
                return EXIT_INTERRUPTED
            try:
                line = self.reader.read("you> ")
            except KeyboardInterrupt:
                sys.stdout.write("\n")
                if self.state.terminated:
                    return EXIT_INTERRUPTED
                self.state.interrupts += 1
                if self.state.interrupts >= 2:
                    return EXIT_INTERRUPTED
                self.console.print(Text("(Ctrl-C again, exit or Ctrl-D to leave)", style="dim"))
                continue
            self.state.interrupts = 0
            if line is None:
                return self._leave() or EXIT_OK
            text = line.strip()
            if not text:
                continue
            handler = handlers.get(text.lower())
            try:
                if handler is None:
                    self._say(text)
                    continue
                code = handler()  # an exit code to leave, or None to stay in the chat
            except KeyboardInterrupt:
                self.view.end_line()
                self.console.print(Text("(interrupted)", style="yellow"))
                continue
            if code is not None:
                return code

    def _run(self, coro: Any) -> Any:
        """Run a coroutine of the conversation; Ctrl-C interrupts it and returns to the prompt."""
        if self.loop is None:
            raise RuntimeError("the chat is not running")
        return self.loop.run(coro)

    # -- words -----------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        from keen.agent.budget import BudgetExhausted

        try:
            reply = self._run(self.agent.send(text))
        except BudgetExhausted as exc:
            self.view.end_line()
            self._error(f"the conversation's budget is spent: {exc.message}")
            return
        except KeenError as exc:
            self.view.end_line()
            self._error(f"no reply: {exc.message}")
            return
        if reply.stopped:
            self.console.print(
                Text(
                    f"(stopped after {reply.model_calls} rounds of reading; ask again to go on)",
                    style="yellow",
                )
            )

    def _help(self) -> None:
        table = Table.grid(padding=(0, 2))
        for word, what in HELP[self.config.mode]:
            table.add_row(Text(word, style="bold"), what)
        table.add_row(Text("anything else", style="bold"), "a message to keen about the project")
        self.console.print(table)

    def _status(self) -> None:
        agent = self.agent
        table = Table.grid(padding=(0, 2))
        table.add_row("user", LOCAL_USER)
        table.add_row("mode", "local (no server login; costs are measured, no credits are charged)")
        table.add_row("model", self.config.model)
        table.add_row("workspace", str(self.config.workspace))
        table.add_row("session", agent.short_id)
        table.add_row("messages", str(len(agent.user_messages())))
        table.add_row("cost so far", f"${agent.spent:.4f} of ${agent.budget.limit:.2f} for the conversation")
        if self.state.runs:
            table.add_row("agent runs", f"${self.state.runs_cost:.4f} ({', '.join(self.state.runs)})")
        self.console.print(table)

    def _clear(self) -> None:
        self._run(self.agent.clear())
        self.console.print("The conversation is cleared; keen remembers nothing of it now.")

    def _leave(self) -> int:
        if self.config.mode == "manifest":
            self.console.print("No vision file was written.")
        self.console.print(
            Text(f"Conversation {self.agent.short_id} ended (cost ${self.agent.spent:.4f}).", style="dim")
        )
        return EXIT_OK

    def _vision(self) -> Any:
        """The synthesized vision, shown; None when there is nothing to synthesize yet."""
        try:
            synthesis = self._run(self.agent.synthesize_vision())
        except InputError as exc:
            self.console.print(exc.message)
            return None
        if synthesis.fallback:
            self.console.print(Text(FALLBACK_LABEL, style="yellow"))
            if synthesis.reason:
                self.console.print(Text(f"  reason: {synthesis.reason}", style="dim"), soft_wrap=True)
        return synthesis

    def _write_file(self, synthesis: Any, output: Path | None) -> Path | None:
        from keen.agent.conversation import format_transcript
        from keen.cli.visionfile import write_vision_file

        try:
            written = self._run(
                write_vision_file(
                    synthesis.text,
                    directory=self.config.workspace,
                    output=output,
                    origin="from a conversation" + (", fallback vision" if synthesis.fallback else ""),
                    discussion=format_transcript(self.agent.exchanges),
                )
            )
        except KeenError as exc:
            self._error(exc.message)
            return None
        self.console.print(f"Vision file written: {written.path}", soft_wrap=True)
        self.console.print(Text(f"Run it with: {written.run_command}", style="dim"), soft_wrap=True)
        return written.path

    def _manifest(self) -> None:
        synthesis = self._vision()
        if synthesis is not None:
            self._write_file(synthesis, None)

    def _done(self) -> int | None:
        synthesis = self._vision()
        if synthesis is None:
            return None
        path = self._write_file(synthesis, self.config.output)
        return EXIT_OK if path is not None else None

    def _breathe(self) -> None:
        from keen.agent.vision import check_vision

        synthesis = self._vision()
        if synthesis is None:
            return
        title = "vision (fallback)" if synthesis.fallback else "vision"
        self.console.print(Panel(Text(synthesis.text), title=title, border_style="magenta"))
        try:
            vision = check_vision(synthesis.text)
            dirty = self._run(_uncommitted(self.config.workspace))
        except KeenError as exc:
            self._error(exc.message)
            return
        if dirty:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            self.console.print(
                f"The workspace has uncommitted changes ({shown}); running commits them first "
                "as a snapshot, as `keen breathe --allow-dirty` does.",
                soft_wrap=True,
            )
        question = f"Run this vision with keen's agent in {self.config.workspace}?"
        if not self.reader.confirm(question):
            self.console.print("Not run. Back to the conversation.")
            return
        self._run_agent(vision, allow_dirty=bool(dirty))
        if not self.state.terminated:
            self.console.print(Text("Back to the conversation.", style="dim"))

    def _run_agent(self, vision: str, *, allow_dirty: bool) -> int | None:
        """Run the vision like `keen breathe` does (same live view and report), with the limits
        `keen converse` was given for its runs."""
        from keen.cli.commands.breathe import run_new_session
        from keen.runner.options import RunLimits, make_options

        settings = self.config.settings
        limits = self.config.run_limits or RunLimits()
        try:
            options = make_options(
                settings,
                vision=vision,
                directory=self.config.workspace,
                model=self.config.model,
                phase="EXPLORE",
                allow_dirty=allow_dirty,
                **asdict(limits),
            )
        except KeenError as exc:
            self._error(exc.message)
            return None

        def record(finished: dict[str, Any]) -> None:
            self.state.runs_cost += Decimal(str(finished.get("cost_usd") or 0))
            self.state.runs.append(f"{finished['session_id'][:8]}: {finished['status']}")

        def stop_chat_on_sigterm(sig: int) -> None:
            if sig == signal.SIGTERM:  # the run is cancelled; the chat must not go on either
                self.state.terminated = True

        try:
            return run_new_session(settings, options, on_finished=record, on_signal=stop_chat_on_sigterm)
        except KeenError as exc:
            self._error(exc.message)
            return None
        finally:
            self._terminate_like_ctrl_c()  # the run's own event loop reset the SIGTERM handler

    def _error(self, message: str) -> None:
        self.console.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)


async def _uncommitted(workspace: Path) -> list[str]:
    """Paths with uncommitted changes ([] when the folder is not a git repository yet)."""
    from keen.gitrepo import GitRepo

    repo = GitRepo(workspace)
    if not await repo.is_repo():
        return []
    return [line[3:] for line in await repo.status_porcelain()]

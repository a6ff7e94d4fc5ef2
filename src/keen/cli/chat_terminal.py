"""The terminal side of a chat: one reader of standard input for prompts and questions (a pipe
works as well as a terminal), and the view that prints the agent's live words and tool calls."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from keen.events import types as ev
from keen.events.bus import WAITING, LiveDelta
from keen.text import clip


class LineReader:
    """The single reader of standard input: prompts and questions, terminal or pipe."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.interactive = sys.stdin.isatty()
        if self.interactive:
            with contextlib.suppress(ImportError):  # platforms without readline
                import readline  # noqa: F401  (line editing and history for input())

    def read(self, prompt: str) -> str | None:
        """One line, or None at the end of input. Ctrl-C raises KeyboardInterrupt."""
        try:
            line = input(prompt)
        except EOFError:
            sys.stdout.write("\n")
            sys.stdout.flush()
            return None
        if not self.interactive:  # a pipe: show what was read, so the output reads as a session
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        return line

    def confirm(self, question: str) -> bool:
        """A y/n question (no is the default; the end of input answers no)."""
        while True:
            answer = self.read(f"{question} [y/N] ")
            if answer is None:
                return False
            word = answer.strip().lower()
            if word in ("y", "yes"):
                return True
            if word in ("", "n", "no"):
                return False
            self.console.print("Please answer y or n.")


class ChatView:
    """Prints the conversation's live deltas and tool calls as the agent works."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._streaming = False
        self._streamed = False
        self._waiting_shown = False  # "keen is thinking…" is on the current terminal line

    def handle(self, item: Any) -> None:
        if isinstance(item, LiveDelta):
            if item.kind == WAITING:
                self._show_waiting()
            elif item.kind == "text" and item.text:
                self._write(item.text)
            return
        self._clear_waiting()
        data = item.data
        if item.type == ev.MODEL_RESPONDED and not data.get("side_call"):
            if not self._streamed and str(data.get("text", "")).strip():
                self._write(str(data["text"]))  # a model that did not stream
            self.end_line()
        elif item.type == ev.TOOL_STARTED:
            self.end_line()
            self.console.print(Text(f"  · {data.get('name')} {_brief(data.get('input'))}", style="dim"))
        elif item.type == ev.TOOL_FINISHED and not data.get("ok"):
            self.console.print(Text(f"    {data.get('error')}", style="yellow"), soft_wrap=True)
        elif item.type == ev.MODEL_RETRYING:
            from keen.cli.views import retrying_text

            self.end_line()
            self.console.print(Text(f"  ({retrying_text(data)})", style="yellow"), soft_wrap=True)

    def _show_waiting(self) -> None:
        """On a terminal, say that a reply is awaited until its first words arrive (a pipe gets
        nothing: the indicator is only for a person watching)."""
        if self._streaming or self._waiting_shown or not self.console.is_terminal:
            return
        sys.stdout.write("\x1b[2mkeen is thinking…\x1b[0m")
        sys.stdout.flush()
        self._waiting_shown = True

    def _clear_waiting(self) -> None:
        if self._waiting_shown:
            sys.stdout.write("\r\x1b[2K")
            sys.stdout.flush()
            self._waiting_shown = False

    def _write(self, text: str) -> None:
        self._clear_waiting()
        if not self._streaming:
            self.console.print(Text("keen> ", style="bold magenta"), end="")
            self._streaming = True
            text = text.lstrip()
        self._streamed = True
        sys.stdout.write(text)
        sys.stdout.flush()

    def end_line(self) -> None:
        self._clear_waiting()
        if self._streaming:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._streaming = False
        self._streamed = False


def _brief(value: Any, limit: int = 100) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, default=str) if value else ""
    return clip(text, limit)

"""What is derived from a conversation, kept so that the next request only derives what is new.

An agent's requests grow by a message or two per step and are otherwise the same message
objects (messages are never changed once built; condensing builds new ones). A `Fold` derives
something message by message (a running size, the provider's form of the messages); the memo
keeps one fold per recent conversation and, given the next request's messages, rewinds it to
the longest prefix of unchanged messages and folds only the rest. Same cost at step 5 and step
5,000, and correct whatever changed: a changed message is simply not part of the prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class Fold(Protocol):
    def rewind(self, keep: int) -> int:
        """Forget what the messages from index `keep` on added; return the index to add
        messages again from (at most `keep`: a fold may need to redo a few before it)."""
        ...

    def add(self, message: Any) -> None: ...


F = TypeVar("F", bound=Fold)


class ConversationMemo(Generic[F]):
    """Folds of the `slots` most recently used conversations, told apart by their first message."""

    def __init__(self, new: Callable[[], F], *, slots: int = 16) -> None:
        self._new = new
        self._slots = slots
        self._entries: dict[int, tuple[list[Any], F]] = {}  # by id of the first message

    def fold(self, messages: list[Any]) -> F:
        """The fold of `messages`, up to date. Read it before the next call: it is reused."""
        if not messages:
            return self._new()
        # The entry keeps its messages alive, so an id found here is still the same object.
        key = id(messages[0])
        entry = self._entries.pop(key, None)
        seen, fold = entry if entry is not None else ([], self._new())
        start = fold.rewind(common_prefix(seen, messages))
        for message in messages[start:]:
            fold.add(message)
        self._entries[key] = (list(messages), fold)
        if len(self._entries) > self._slots:
            del self._entries[next(iter(self._entries))]  # the least recently used
        return fold


def common_prefix(old: list[Any], new: list[Any]) -> int:
    """How many leading messages of `new` are those of `old`."""
    n = min(len(old), len(new))
    if n == 0:
        return 0
    # Usually all but the newest message are the very same objects: one comparison in C, which
    # checks identity first (equal but distinct messages count too, as they derive the same).
    if old[: n - 1] == new[: n - 1]:
        return n if old[n - 1] is new[n - 1] else n - 1
    for index in range(n):
        if old[index] is not new[index]:
            return index
    return n

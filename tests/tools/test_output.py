"""The one set of text shorteners (`keen.text`) every tool result and display uses."""

from __future__ import annotations

from keen.text import clip, cut_middle, excerpt


def test_cut_middle_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    text = "HEAD" + "x" * 1000 + "TAIL"

    cut = cut_middle(text, 100)

    assert cut.startswith("HEAD") and cut.endswith("TAIL")
    assert "[... 908 characters cut by keen ...]" in cut
    assert cut_middle("short", 100) == "short"


def test_excerpt_keeps_the_position_in_view() -> None:
    line = "a" * 500 + "MATCH" + "b" * 500

    shown = excerpt(line, 500, 100)

    assert "MATCH" in shown
    assert shown.startswith("[... 475 characters] ") and shown.endswith(" [... 430 characters]")
    assert excerpt("short", 0, 100) == "short"


def test_clip_keeps_the_start_with_an_ellipsis() -> None:
    assert clip("abcdef", 4) == "abc…"
    assert clip("abc", 4) == "abc"

"""The registry's bounds: what one call may take in, and how much of its result is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keen.tools.limits import MAX_INPUT_BYTES, MAX_INPUT_DEPTH
from keen.tools.output import fit
from keen.tools.registry import RESULT_LIMIT


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


async def test_input_nested_too_deep_is_refused_before_validation(call, root: Path) -> None:
    ok = await call("write_files", {"path": "a.txt", "content": "x", "extra": _nested(MAX_INPUT_DEPTH - 2)})
    deep = await call("write_files", {"path": "a.txt", "content": "x", "extra": _nested(5000)})

    assert not ok.ok and "extra" in ok.error  # within the bound: the schema speaks
    assert not deep.ok and f"nested more than {MAX_INPUT_DEPTH} levels" in deep.error
    assert not (root / "a.txt").exists()


async def test_input_larger_than_the_bound_is_refused(call, root: Path) -> None:
    half = "x" * (MAX_INPUT_BYTES // 2)
    result = await call(
        "write_files", {"files": [{"path": "a", "content": half}, {"path": "b", "content": half}]}
    )

    assert not result.ok and "larger than" in result.error
    assert not (root / "a").exists()


async def test_a_lone_surrogate_in_any_field_or_key_is_refused_naming_it(call) -> None:
    value = await call(
        "write_files", {"files": [{"path": "ok.txt", "content": "fine"}, {"path": "b\udfff", "content": ""}]}
    )
    key = await call("read_files", {"paths": ["x"], "\ud800": 1})

    assert not value.ok and "files.1.path" in value.error and "not valid Unicode" in value.error
    assert not key.ok and "key" in key.error
    json.dumps(value.error).encode("utf-8")
    key.error.encode("utf-8")


async def test_large_output_is_cut_per_string_keeping_its_shape(call, root: Path) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(f"{name} starts\n" + "y" * 100_000 + f"\n{name} ends\n")

    result = await call("read_files", {"paths": ["a.txt", "b.txt", "c.txt"]})

    assert result.ok
    assert len(json.dumps(result.output, ensure_ascii=False)) <= RESULT_LIMIT
    for entry, name in zip(result.output["files"], ("a.txt", "b.txt", "c.txt"), strict=True):
        assert entry["path"] == name and entry["size"] > 100_000
        assert entry["content"].startswith(f"{name} starts") and entry["content"].endswith(f"{name} ends\n")
        assert "characters cut by keen" in entry["content"]
    json.loads(result.content())  # what the model reads is still one JSON document


async def test_many_small_items_lose_their_middle_not_their_text(call, root: Path) -> None:
    (root / "many.txt").write_text("".join(f"needle {i:05d} " + "z" * 150 + "\n" for i in range(2000)))

    result = await call("search_files", {"pattern": "needle", "max_results": 2000})

    matches = result.output["matches"]
    assert len(json.dumps(result.output, ensure_ascii=False)) <= RESULT_LIMIT
    assert matches[0]["text"].startswith("needle 00000") and matches[-1]["text"].startswith("needle 01999")
    assert any(isinstance(m, str) and "items cut by keen" in m for m in matches)
    assert result.output["count"] == 2000


def test_fit_leaves_small_values_alone_and_falls_back_to_cutting_the_text() -> None:
    small = {"a": [1, 2, {"b": "c"}]}
    wide = {f"key{i}": i for i in range(5000)}  # no long string, no long list

    assert fit(small, 1000) is small
    cut = fit(wide, 2000)
    assert isinstance(cut, str) and len(cut) < 2100 and "characters cut by keen" in cut

"""Live subscribers see every stored event in order, plus streamed text and thinking deltas."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers import call, complete, turn, write_script
from keen.config import get_settings
from keen.events.bus import EventBus, LiveDelta
from keen.events.types import Event, SessionRef
from keen.runner.options import make_options
from keen.runner.sessions import SessionService


async def test_subscribers_get_events_in_seq_order_and_deltas_that_are_not_stored(
    repo: Path, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("get_project_tree"), text="looking around the repository", thinking="first the tree"),
            complete(),
        ],
    )
    settings = get_settings()
    options = make_options(
        settings,
        vision="stream everything live",
        directory=repo,
        model=f"scripted:{script}",
        max_iterations=5,
        budget="1",
        phase="EXPLORE",
        max_depth=1,
        gates="off",
        web_search=False,
        allow_dirty=False,
    )
    seen: list[object] = []
    async with SessionService(settings) as service:
        service.watch(seen.append)
        queue = service.bus.subscribe()
        spec = await service.create(options)
        await service.run(spec.session_id)
        stored = await service.events(spec.root_session_id)
        queued = []
        while not queue.queue.empty():
            queued.append(queue.queue.get_nowait())
    events = [i for i in seen if isinstance(i, Event)]
    deltas = [i for i in seen if isinstance(i, LiveDelta)]
    assert [e.seq for e in events] == [e.seq for e in stored]
    assert "".join(d.text for d in deltas if d.kind == "text").strip() == "looking around the repository"
    assert "".join(d.text for d in deltas if d.kind == "thinking").strip() == "first the tree"
    # Deltas arrive before the model.responded event that holds the full text.
    first_response = next(
        i for i, item in enumerate(seen) if isinstance(item, Event) and item.type == "model.responded"
    )
    assert all(seen.index(d) < first_response for d in deltas[:3])
    assert [getattr(i, "seq", None) for i in queued if isinstance(i, Event)] == [e.seq for e in stored]


async def test_a_slow_queue_subscriber_is_dropped_instead_of_blocking() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=2)
    fast: list[object] = []
    bus.add_callback(fast.append)
    for i in range(5):
        bus.offer(LiveDelta("s", "r", "text", str(i)))
    assert len(fast) == 5
    assert slow.overflowed and bus.subscriber_count() == 1
    items = [item async for item in slow]
    assert [i.text for i in items] == ["0", "1"]


async def test_subscription_filters_by_root_session() -> None:
    bus = EventBus()
    mine = bus.subscribe(root_id="r1")
    bus.offer(LiveDelta("a", "r2", "text", "other"))
    bus.offer(LiveDelta("b", "r1", "text", "mine"))
    mine.close()
    assert [i.text async for i in mine] == ["mine"]
    assert SessionRef("x", "y").parent_session_id is None
    await asyncio.sleep(0)

"""Events: the append-only log every view reads (envelope, sink, in-process bus)."""

from keen.events.bus import Bus, EventBus, LiveDelta, Subscription
from keen.events.sink import EventSink, EventStore, RecordingSink
from keen.events.types import Event, SessionRef

__all__ = [
    "Bus",
    "Event",
    "EventBus",
    "EventSink",
    "EventStore",
    "LiveDelta",
    "RecordingSink",
    "SessionRef",
    "Subscription",
]

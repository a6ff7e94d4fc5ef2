"""Durations for people."""

__version__ = "0.1.0"


def hms(seconds: int) -> str:
    """`seconds` as hours, minutes and seconds: 3723 -> "1h 02m 03s"."""
    if seconds < 0:
        raise ValueError("a duration is never negative")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"

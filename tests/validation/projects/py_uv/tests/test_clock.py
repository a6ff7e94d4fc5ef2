import pytest
from keenfix_clock import hms


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0m 00s"), (59, "0m 59s"), (61, "1m 01s"), (3600, "1h 00m 00s"), (3723, "1h 02m 03s")],
)
def test_hms(seconds, text):
    assert hms(seconds) == text


def test_negative_is_refused():
    with pytest.raises(ValueError, match="never negative"):
        hms(-1)

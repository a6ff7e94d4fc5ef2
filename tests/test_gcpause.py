import gc

import pytest

from keen.gcpause import collector_paused, paused_until_kept


def test_the_collector_is_paused_inside_and_enabled_again_after():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_enables_the_collector_again():
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with collector_paused(), collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_keep_freezes_what_is_alive_and_collects_again():
    try:
        with paused_until_kept() as keep:
            assert not gc.isenabled()
            kept = [object() for _ in range(10)]
            keep()
            assert gc.isenabled() and gc.get_freeze_count() > 0
            keep()  # once is enough: a second call changes nothing
            assert gc.isenabled()
        assert gc.isenabled() and kept
    finally:
        gc.unfreeze()


def test_a_block_that_ends_before_keep_collects_again_without_freezing():
    frozen = gc.get_freeze_count()
    with pytest.raises(RuntimeError), paused_until_kept():
        raise RuntimeError("the session never started")
    assert gc.isenabled() and gc.get_freeze_count() == frozen

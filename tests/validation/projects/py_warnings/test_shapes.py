import warnings

import pytest
from shapes import circle, square


def test_square():
    assert square(3) == 9


def test_circle():
    assert circle(1) == pytest.approx(3.14159, rel=1e-5)


def test_a_warning_is_an_error_here():
    with pytest.raises(DeprecationWarning):
        warnings.warn("old", DeprecationWarning, stacklevel=1)


@pytest.mark.parametrize("side", [0, 1, 2])
def test_square_is_never_negative(side):
    assert square(side) >= 0


@pytest.mark.skip(reason="triangles come later")
def test_triangle():
    raise AssertionError("not reached")

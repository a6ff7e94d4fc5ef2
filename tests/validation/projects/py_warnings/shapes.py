"""Areas of simple shapes."""

import math


def circle(radius: float) -> float:
    """The area of a circle."""
    return math.pi * radius**2


def square(side: float) -> float:
    """The area of a square."""
    return side * side

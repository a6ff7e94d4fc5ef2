"""Temperature conversions, standard library only."""


def to_fahrenheit(celsius: float) -> float:
    """Degrees Celsius in Fahrenheit."""
    return celsius * 9 / 5 + 32


def to_celsius(fahrenheit: float) -> float:
    """Degrees Fahrenheit in Celsius."""
    return (fahrenheit - 32) * 5 / 9

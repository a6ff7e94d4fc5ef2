"""keen: an autonomous software-development agent that works in a git workspace."""

__version__ = "0.1.0"

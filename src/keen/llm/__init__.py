"""Models: the only package that imports a provider SDK (lazily, per provider module)."""

from keen.llm.base import (
    Delta,
    DeltaCallback,
    Message,
    Model,
    Part,
    Request,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
    Turn,
    Usage,
)

__all__ = [
    "Delta",
    "DeltaCallback",
    "Message",
    "Model",
    "Part",
    "Request",
    "TextPart",
    "ThinkingPart",
    "ToolResultPart",
    "ToolSpec",
    "ToolUsePart",
    "Turn",
    "Usage",
]

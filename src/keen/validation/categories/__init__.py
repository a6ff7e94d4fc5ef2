"""The validation categories, each a `check(ctx) -> CategoryResult` in its own module."""

from __future__ import annotations

from keen.validation.categories import documentation, performance, security, style, syntax, tests
from keen.validation.context import Check

CHECKS: dict[str, Check] = {
    "syntax": syntax.check,
    "style": style.check,
    "tests": tests.check,
    "security": security.check,
    "performance": performance.check,
    "documentation": documentation.check,
}

__all__ = ["CHECKS"]

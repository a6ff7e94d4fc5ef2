"""Validation: real linters, test runners and scanners judging a project (SPEC section 6)."""

from keen.validation.engine import validate_project
from keen.validation.report import (
    CATEGORY_NAMES,
    CategoryResult,
    Finding,
    FixSummary,
    Timeouts,
    ValidationReport,
)

__all__ = [
    "CATEGORY_NAMES",
    "CategoryResult",
    "Finding",
    "FixSummary",
    "Timeouts",
    "ValidationReport",
    "validate_project",
]

"""How a value that could not be computed reads in every table, report and printout: one em dash."""

from __future__ import annotations

import math

MISSING = "—"


def is_missing(value: object) -> bool:
    """None (not computed) or NaN (computed from nothing)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_number(value: float | None, spec: str) -> str:
    """``format(value, spec)``, or :data:`MISSING` for None and NaN."""
    return MISSING if is_missing(value) else format(value, spec)

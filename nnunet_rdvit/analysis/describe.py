"""Mean ± standard deviation over cases, skipping cases where a value is undefined (``None`` or NaN)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def is_known(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def describe(values: Sequence[float | None]) -> dict:
    """``{"mean", "std", "cases"}`` over the known values (sample std; 0 for one case; None for none)."""
    known = np.array([v for v in values if is_known(v)], dtype=np.float64)
    if known.size == 0:
        return {"mean": None, "std": None, "cases": 0}
    return {"mean": float(known.mean()), "std": float(known.std(ddof=1)) if known.size > 1 else 0.0,
            "cases": int(known.size)}

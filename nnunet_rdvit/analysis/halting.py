"""Where ACT spends its loops: mean loops per token on structure boundaries, interiors and background.

Per case, each category's mean is taken over its tile tokens (see :mod:`.tokens`); across cases the
categories are compared pairwise with the Wilcoxon signed-rank test, one pair per case that has both
categories. The paper claims more loops at boundaries; the test's direction and the count of cases where
boundaries looped longer say whether this model agrees.
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np

from nnunet_rdvit.analysis.describe import describe, is_known
from nnunet_rdvit.analysis.token_labels import (any_boundary_token_mask, any_interior_token_mask,
                                                background_token_mask, boundary_token_mask, interior_token_mask)
from nnunet_rdvit.analysis.tokens import CaseTokens

ALL_STRUCTURES = "all structures"  # pooled: any boundary token vs any single-structure interior token


def case_halting(tokens: CaseTokens, structures: Mapping[str, int]) -> dict:
    """Mean loops (and token counts) of ``tokens`` per category: background, and per structure (and pooled)
    boundary and interior. Means are ``None`` where a category has no token."""
    histogram, loops = tokens.histogram, tokens.halting.astype(np.float64)
    groups = {name: {"boundary": _mean(loops, boundary_token_mask(histogram, label)),
                     "interior": _mean(loops, interior_token_mask(histogram, label))}
              for name, label in structures.items()}
    groups[ALL_STRUCTURES] = {"boundary": _mean(loops, any_boundary_token_mask(histogram)),
                              "interior": _mean(loops, any_interior_token_mask(histogram))}
    return {"case": tokens.name, "mean_loops": float(loops.mean()),
            "background": _mean(loops, background_token_mask(histogram)),
            "structures": groups}


def halting_summary(per_case: Sequence[dict], structures: Sequence[str]) -> dict:
    """Across cases: the mean of the per-case means per category, and the paired tests."""
    def series(pick) -> list[float | None]:
        return [pick(case)["mean_loops"] for case in per_case]

    categories = {"background": describe(series(lambda c: c["background"]))}
    tests = {}
    for name in [*structures, ALL_STRUCTURES]:
        boundary = series(lambda c, n=name: c["structures"][n]["boundary"])
        interior = series(lambda c, n=name: c["structures"][n]["interior"])
        categories[f"{name} boundary"] = describe(boundary)
        categories[f"{name} interior"] = describe(interior)
        tests[f"{name}: boundary vs interior"] = paired_test(boundary, interior)
    background = series(lambda c: c["background"])
    tests[f"{ALL_STRUCTURES}: boundary vs background"] = paired_test(
        series(lambda c: c["structures"][ALL_STRUCTURES]["boundary"]), background)
    return {"categories": categories, "tests": tests}


def paired_test(first: Sequence[float | None], second: Sequence[float | None]) -> dict:
    """Wilcoxon signed-rank test of ``first`` vs ``second`` (two-sided), over the pairs where both are known.

    ``mean_difference`` and ``first_greater`` (pairs where first > second) give the direction.
    """
    from scipy.stats import wilcoxon

    pairs = [(a, b) for a, b in zip(first, second) if is_known(a) and is_known(b)]
    result = {"pairs": len(pairs), "mean_difference": None, "median_difference": None, "first_greater": None,
              "statistic": None, "p_value": None}
    if not pairs:
        return {**result, "note": "no case has both categories"}
    differences = np.array([a - b for a, b in pairs], dtype=np.float64)
    result.update(mean_difference=float(differences.mean()), median_difference=float(np.median(differences)),
                  first_greater=int((differences > 0).sum()))
    if np.all(differences == 0):
        return {**result, "p_value": 1.0, "note": "all differences are zero"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that exact p-values are coarse for few pairs
        test = wilcoxon(differences)
    note = "fewer than 6 pairs: a two-sided p below 0.05 is impossible" if len(pairs) < 6 else None
    return {**result, "statistic": float(test.statistic), "p_value": float(test.pvalue),
            **({"note": note} if note else {})}


def _mean(values: np.ndarray, mask: np.ndarray) -> dict:
    count = int(mask.sum())
    return {"mean_loops": float(values[mask].mean()) if count else None, "tokens": count}

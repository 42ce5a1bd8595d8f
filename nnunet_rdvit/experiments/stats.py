"""Paired comparison of two trainers on the same cases: Wilcoxon signed-rank test.

Pairs are (fold, case): every trainer of a grid validates the same cases in a fold, so the per-case
differences isolate the trainer. A case's overall value is its mean over structures
(:func:`~nnunet_rdvit.experiments.aggregate.overall_value`). Pairs where either
value is undefined (NaN) are dropped. The test is two-sided (``scipy.stats.wilcoxon`` defaults: zero
differences discarded, exact distribution for small samples without ties); the statistic is
min(W+, W−).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from nnunet_rdvit.experiments.aggregate import OVERALL, CaseScore, overall_value


@dataclass(frozen=True)
class Comparison:
    trainer_a: str
    trainer_b: str
    percent: int
    configuration: str
    metric: str  # "dice" or "hd95"
    structure: str
    n: int  # paired cases
    mean_a: float
    mean_b: float
    mean_difference: float  # mean of a − b
    statistic: float  # NaN when there is no non-zero difference to test
    p_value: float


def paired_comparisons(scores: Iterable[CaseScore], pairs: Iterable[tuple[str, str]], structures: list[str],
                       metrics: tuple[str, ...] = ("dice", "hd95")) -> list[Comparison]:
    """One comparison per pair × fraction × configuration × metric × structure (and the overall mean)."""
    values = _per_case_values(scores, structures, metrics)
    settings = sorted({(percent, configuration) for (_, percent, configuration) in values})
    comparisons = []
    for trainer_a, trainer_b in pairs:
        for percent, configuration in settings:
            a, b = values.get((trainer_a, percent, configuration)), values.get((trainer_b, percent, configuration))
            if a is None or b is None:
                continue
            for metric in metrics:
                for structure in [*structures, OVERALL]:
                    comparisons.append(_compare(trainer_a, trainer_b, percent, configuration, metric, structure,
                                                a[(metric, structure)], b[(metric, structure)]))
    return comparisons


def wilcoxon_signed_rank(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(statistic, two-sided p) for paired samples; (NaN, NaN) when every difference is zero or none exist."""
    from scipy.stats import wilcoxon

    differences = np.asarray(a, float) - np.asarray(b, float)
    if not np.any(differences != 0):
        return math.nan, math.nan
    result = wilcoxon(differences)
    return float(result.statistic), float(result.pvalue)


def _per_case_values(scores: Iterable[CaseScore], structures: list[str], metrics: tuple[str, ...]
                     ) -> dict[tuple, dict[tuple[str, str], dict[tuple, float]]]:
    """(trainer, percent, configuration) -> (metric, structure) -> (fold, case) -> value."""
    cases: dict[tuple, dict[tuple, dict[str, CaseScore]]] = {}
    for score in scores:
        key = (score.trainer, score.percent, score.configuration)
        cases.setdefault(key, {}).setdefault((score.fold, score.case), {})[score.structure] = score
    values: dict[tuple, dict[tuple[str, str], dict[tuple, float]]] = {}
    for key, by_case in cases.items():
        table = values.setdefault(key, {})
        for case_key, by_structure in by_case.items():
            for metric in metrics:
                per_structure = [getattr(by_structure[s], metric) if s in by_structure else math.nan
                                 for s in structures]
                for structure, value in zip(structures, per_structure):
                    table.setdefault((metric, structure), {})[case_key] = value
                table.setdefault((metric, OVERALL), {})[case_key] = overall_value(metric, per_structure)
    return values


def _compare(trainer_a: str, trainer_b: str, percent: int, configuration: str, metric: str, structure: str,
             a: dict[tuple, float], b: dict[tuple, float]) -> Comparison:
    paired = [(a[k], b[k]) for k in sorted(a.keys() & b.keys(), key=str)
              if not math.isnan(a[k]) and not math.isnan(b[k])]
    values_a = np.array([x for x, _ in paired])
    values_b = np.array([y for _, y in paired])
    if paired:
        statistic, p_value = wilcoxon_signed_rank(values_a, values_b)
        means = float(values_a.mean()), float(values_b.mean()), float((values_a - values_b).mean())
    else:
        statistic = p_value = math.nan
        means = (math.nan, math.nan, math.nan)
    return Comparison(trainer_a, trainer_b, percent, configuration, metric, structure, len(paired), *means,
                      statistic, p_value)

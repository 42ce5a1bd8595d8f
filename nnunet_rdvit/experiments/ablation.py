"""The ablation table: each RD-ViT variant against the full model, per configuration and data fraction.

A row holds the variant's mean ± std over folds (the same numbers as ``validation_summary.csv``) and its paired
difference to the full model: Δ is the mean over the (fold, case) pairs both have of variant − full model —
the difference the Wilcoxon signed-rank test (:mod:`.stats`) tests, so it stays right when one of the two has
fewer finished folds — and p is that test's two-sided p-value. Rows exist when the grid has the full model
and at least one ablation (:mod:`nnunet_rdvit.ablation_names`), whatever else it has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from nnunet_rdvit.ablation_names import ABLATIONS, FULL_MODEL
from nnunet_rdvit.experiments.aggregate import OVERALL, CaseScore, SummaryRow
from nnunet_rdvit.experiments.stats import paired_comparisons

REFERENCE_CHANGE = "full model (reference)"


@dataclass(frozen=True)
class AblationRow:
    configuration: str
    percent: int
    metric: str  # "dice" or "hd95"
    trainer: str
    change: str  # what the variant changes; REFERENCE_CHANGE for the full model
    structure: str
    n_folds: int
    mean: float
    std: float
    difference: float  # paired mean of variant − full model; NaN for the full model itself
    n_pairs: int  # (fold, case) pairs behind difference and p_value
    p_value: float

    @property
    def is_reference(self) -> bool:
        return self.trainer == FULL_MODEL


def ablation_variants(trainers: Iterable[str]) -> list[str]:
    """The ablations among ``trainers`` in the table's order; empty without the full model to compare against."""
    trainers = list(trainers)
    return [name for name in ABLATIONS if name in trainers] if FULL_MODEL in trainers else []


def ablation_rows(summary: Sequence[SummaryRow], scores: Iterable[CaseScore], structures: list[str],
                  trainers: Sequence[str], metrics: tuple[str, ...] = ("dice", "hd95")) -> list[AblationRow]:
    """Per configuration, fraction and metric: the full model, then each ablation of ``trainers``."""
    variants = ablation_variants(trainers)
    if not variants:
        return []
    tests = {(c.trainer_b, c.configuration, c.percent, c.metric, c.structure): c
             for c in paired_comparisons(scores, [(FULL_MODEL, v) for v in variants], structures, metrics)}
    by_key = {(r.trainer, r.configuration, r.percent, r.structure): r for r in summary}
    settings = sorted({(r.configuration, r.percent) for r in summary if r.trainer in (FULL_MODEL, *variants)})
    rows = []
    for configuration, percent in settings:
        for metric in metrics:
            for trainer in (FULL_MODEL, *variants):
                for structure in [*structures, OVERALL]:
                    row = by_key.get((trainer, configuration, percent, structure))
                    if row is None:
                        continue
                    mean, std = (row.dice_mean, row.dice_std) if metric == "dice" else (row.hd95_mean, row.hd95_std)
                    test = tests.get((trainer, configuration, percent, metric, structure))
                    # Comparison.mean_difference is full model − variant
                    difference = -test.mean_difference if test else math.nan
                    rows.append(AblationRow(configuration, percent, metric, trainer,
                                            ABLATIONS.get(trainer, REFERENCE_CHANGE), structure, row.n, mean, std,
                                            difference, test.n if test else 0, test.p_value if test else math.nan))
    return rows

"""Which training patients a low-data run uses: a pure, deterministic, nested, stratified subsample.

Rules (docs/experiments.md explains them for users):

* The unit is the **patient**: all cases (ACDC: the ED and ES frames) of a chosen patient are used, those of
  any other patient are not. Patients and pathology groups come from ``case_metadata.json``; without it, cases
  are grouped by :func:`~nnunet_rdvit.dataset_conversion.patient_of_case` (``<patient>_frame<NN>`` → patient,
  anything else is its own patient) and all patients form one stratum.
* **Order.** Within a stratum, patients are ordered by SHA-256 of (fold, patient id): a fixed pseudo-random
  order that depends on nothing else — not on Python's per-process hash salt, library versions, or which
  other patients are present. Strata are then interleaved by the Huntington–Hill divisor method (the rule
  that apportions the US House): the (i+1)-th patient of a stratum of n patients gets priority
  n / sqrt(i·(i+1)), so every stratum's first patient comes before any stratum's second, and later patients
  follow stratum size. Ties between strata are broken by another per-fold hash. This gives one ordered list
  of all training patients per fold.
* **Size.** A fraction p % takes the first ``max(#strata, ceil(p·N/100))`` patients of that list (N training
  patients). Every stratum is represented, each stratum's share stays close to proportional (a divisor
  method), and because every fraction is a prefix of the same list, 10 % ⊂ 25 % ⊂ 50 % ⊂ 100 % holds by
  construction.

The validation cases are never touched here: the caller passes only the fold's training cases.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Mapping

from nnunet_rdvit.dataset_conversion.metadata import CASE_METADATA_FILE, patient_of_case
from nnunet_rdvit.fraction_trainer_names import check_percent

# Part of every hashed key: changing the selection rule must change this, so old and new subsets never mix.
_SCHEME = "nnunet-rdvit data-fraction v1"
UNGROUPED = "ungrouped"  # stratum of patients without a pathology group
GROUPING_BY_METADATA = f"patients and groups from {CASE_METADATA_FILE}"
GROUPING_BY_CASE_ID = "patients from case ids (<patient>_frame<NN>; other ids are their own patient), one stratum"


@dataclass(frozen=True)
class TrainingSubset:
    percent: int
    fold: int | str
    cases: tuple[str, ...]  # sorted training case ids of the chosen patients
    patients: tuple[str, ...]  # chosen patients, in selection order
    n_patients_available: int
    strata: dict[str, tuple[int, int]]  # group -> (patients chosen, patients available)
    grouping: str

    def to_json(self) -> dict:
        return {
            "percent": self.percent,
            "fold": self.fold,
            "grouping": self.grouping,
            "n_patients": len(self.patients),
            "n_patients_available": self.n_patients_available,
            "n_cases": len(self.cases),
            "strata": {group: {"chosen": chosen, "available": available}
                       for group, (chosen, available) in self.strata.items()},
            "patients": list(self.patients),
            "cases": list(self.cases),
        }


def select_training_subset(train_cases: Iterable[str], percent: int, fold: int | str,
                           metadata: Mapping[str, Mapping] | None = None) -> TrainingSubset:
    """The cases of ``percent`` % of the patients in ``train_cases`` (one fold's training cases).

    ``metadata`` is ``case_metadata.json``'s content (``{case: {"patient", "group", ...}}``); empty or None
    selects the case-id grouping rule. Raises ValueError for a bad percentage, metadata that misses some
    training cases, or a patient whose cases disagree about its group.
    """
    check_percent(percent)
    cases = sorted(set(train_cases))
    if not cases:
        raise ValueError("no training cases to subsample")
    patient_of, group_of, grouping = _patients_and_groups(cases, metadata or {})

    strata: dict[str, list[str]] = {}
    for patient in sorted(group_of):
        strata.setdefault(group_of[patient], []).append(patient)
    ranked = []
    for group, patients in strata.items():
        order = sorted(patients, key=lambda patient: _digest(fold, "patient", patient))
        # Ascending sqrt(i·(i+1)) / n is descending Huntington–Hill priority; squared, it stays exact.
        ranked += [(Fraction(i * (i + 1), len(order) ** 2), _digest(fold, "group", group), patient)
                   for i, patient in enumerate(order)]
    ordered = [patient for *_, patient in sorted(ranked)]

    n_total = len(ordered)
    n_chosen = min(n_total, max(len(strata), math.ceil(percent * n_total / 100)))
    chosen = ordered[:n_chosen]
    chosen_set = set(chosen)
    return TrainingSubset(
        percent=percent,
        fold=fold,
        cases=tuple(case for case in cases if patient_of[case] in chosen_set),
        patients=tuple(chosen),
        n_patients_available=n_total,
        strata={group: (sum(p in chosen_set for p in patients), len(patients))
                for group, patients in sorted(strata.items())},
        grouping=grouping,
    )


def _patients_and_groups(cases: list[str], metadata: Mapping[str, Mapping]
                         ) -> tuple[dict[str, str], dict[str, str], str]:
    if not metadata:
        patient_of = {case: patient_of_case(case) for case in cases}
        return patient_of, {patient: UNGROUPED for patient in patient_of.values()}, GROUPING_BY_CASE_ID
    missing = [case for case in cases if case not in metadata]
    if missing:
        raise ValueError(f"{CASE_METADATA_FILE} has no entry for {len(missing)} training case(s), e.g. {missing[0]}; "
                         f"it belongs to another dataset or is stale — regenerate it with the converter")
    patient_of = {case: str(metadata[case].get("patient") or patient_of_case(case)) for case in cases}
    group_of: dict[str, str] = {}
    for case in cases:
        group = metadata[case].get("group") or UNGROUPED
        previous = group_of.setdefault(patient_of[case], group)
        if previous != group:
            raise ValueError(f"{CASE_METADATA_FILE} puts the cases of patient {patient_of[case]} into two groups "
                             f"({previous}, {group}); fix the metadata")
    return patient_of, group_of, GROUPING_BY_METADATA


def _digest(fold: int | str, kind: str, name: str) -> str:
    return hashlib.sha256(f"{_SCHEME}|fold={fold}|{kind}={name}".encode()).hexdigest()

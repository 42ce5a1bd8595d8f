"""Patient-grouped k-fold cross-validation splits in nnU-Net's ``splits_final.json`` format.

Splitting the ED and ES frames of one patient across train and validation leaks the patient's anatomy
into validation. The semantics follow nnU-Net's own ACDC conversion (Dataset027) so results stay comparable
with published nnU-Net numbers: unique patients in sorted order, shuffled by ``np.random.RandomState(1234)``,
fold ``k`` validates on ``patients[k::5]``; case lists are in sorted order.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from nnunet_rdvit.dataset_conversion.metadata import patient_of_case


def patient_grouped_splits(case_ids: Iterable[str], n_folds: int = 5, seed: int = 1234,
                           patient_of: dict[str, str] | None = None) -> list[dict[str, list[str]]]:
    """``[{"train": [...], "val": [...]}, ...]``, one entry per fold; every patient is validated exactly once.

    ``patient_of`` maps case id -> patient; cases missing from it are grouped by :func:`patient_of_case`.
    """
    cases = sorted(set(case_ids))
    patient_of = {case: (patient_of or {}).get(case) or patient_of_case(case) for case in cases}
    patients = np.unique(list(patient_of.values()))
    if len(patients) < n_folds:
        raise ValueError(f"{n_folds}-fold splits need at least {n_folds} patients, got {len(patients)}")
    np.random.RandomState(seed).shuffle(patients)
    splits = []
    for fold in range(n_folds):
        val_patients = set(patients[fold::n_folds].tolist())
        splits.append({
            "train": [case for case in cases if patient_of[case] not in val_patients],
            "val": [case for case in cases if patient_of[case] in val_patients],
        })
    return splits

"""Per-case metadata (patient, cardiac phase, pathology group, ...) stored beside an nnU-Net dataset.

nnU-Net only knows case ids. Patient-level work — grouped splits, low-data subsets that sample whole
patients stratified by pathology group — needs to know which cases belong to which patient and group. The
converter writes that to ``case_metadata.json`` in the raw dataset folder and beside ``splits_final.json`` in
the preprocessed one, so trainers can read it from where they already look.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CASE_METADATA_FILE = "case_metadata.json"

_FRAME_SUFFIX = re.compile(r"^(?P<patient>.+)_frame\d+$")


def load_case_metadata(folder: str | Path) -> dict[str, dict]:
    """``{case_id: {"patient", "phase", "frame", "group", ...}}`` from a raw or preprocessed dataset folder.

    Returns ``{}`` when the folder has no metadata file (datasets not converted by us), so callers can fall
    back to :func:`patient_of_case`.
    """
    path = Path(folder) / CASE_METADATA_FILE
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as file:
        return json.load(file)


def patient_of_case(case_id: str) -> str:
    """The patient a case belongs to, for grouping cases so that no patient straddles train and validation.

    Rule: a case id ending in ``_frame<digits>`` (ACDC's ``patient001_frame01``, also used by other cine-MRI
    datasets) belongs to the patient named by what precedes it (``patient001``). Any other case id is its own
    patient, which reproduces nnU-Net's default case-wise behaviour. A bare numeric suffix is deliberately
    *not* stripped: in most nnU-Net datasets (``hippocampus_001``, ``BraTS2021_00000``) that number is the
    patient, and stripping it would put every case into one group. Prefer ``case_metadata.json`` (see
    :func:`load_case_metadata`) where it exists.
    """
    match = _FRAME_SUFFIX.match(case_id)
    return match.group("patient") if match else case_id

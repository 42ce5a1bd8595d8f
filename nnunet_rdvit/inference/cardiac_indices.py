"""Cardiac volumes and indices from ED and ES label maps (ACDC labels: 1 RV, 2 MYO, 3 LV).

Volumes are voxel counts times the voxel volume (mm³ -> mL), over the whole stack, as in the ACDC challenge's
clinical evaluation (Bernard et al., IEEE TMI 2018): LV and RV end-diastolic and end-systolic volume (EDV,
ESV), stroke volume SV = EDV − ESV, ejection fraction EF = SV / EDV, and the LV myocardial mass at ED
= myocardial volume × 1.05 g/mL.
"""

from __future__ import annotations

import numpy as np

from nnunet_rdvit.acdc_labels import STRUCTURES
from nnunet_rdvit.number_format import MISSING

MYOCARDIAL_DENSITY_G_PER_ML = 1.05
# Index name -> (display name, unit). Names carry their unit so CSV columns are self-explaining.
INDICES = {
    "LV_EDV_ml": ("LV EDV", "mL"),
    "LV_ESV_ml": ("LV ESV", "mL"),
    "LV_SV_ml": ("LV SV", "mL"),
    "LV_EF_percent": ("LV EF", "%"),
    "RV_EDV_ml": ("RV EDV", "mL"),
    "RV_ESV_ml": ("RV ESV", "mL"),
    "RV_SV_ml": ("RV SV", "mL"),
    "RV_EF_percent": ("RV EF", "%"),
    "MYO_mass_ED_g": ("LV myocardial mass (ED)", "g"),
}


def structure_volumes_ml(labels: np.ndarray, voxel_volume_ml: float) -> dict[str, float]:
    """Volume of every structure in mL."""
    counts = np.bincount(labels.ravel(), minlength=max(STRUCTURES.values()) + 1)
    return {name: float(counts[label]) * voxel_volume_ml for name, label in STRUCTURES.items()}


def cardiac_indices(ed_volumes_ml: dict[str, float], es_volumes_ml: dict[str, float]) -> dict[str, float | None]:
    """The indices of :data:`INDICES`; an EF is ``None`` when its EDV is 0 (structure not found at ED)."""
    indices: dict[str, float | None] = {}
    for ventricle in ("LV", "RV"):
        edv, esv = ed_volumes_ml[ventricle], es_volumes_ml[ventricle]
        indices[f"{ventricle}_EDV_ml"] = edv
        indices[f"{ventricle}_ESV_ml"] = esv
        indices[f"{ventricle}_SV_ml"] = edv - esv
        indices[f"{ventricle}_EF_percent"] = 100.0 * (edv - esv) / edv if edv > 0 else None
    indices["MYO_mass_ED_g"] = ed_volumes_ml["MYO"] * MYOCARDIAL_DENSITY_G_PER_ML
    return {name: indices[name] for name in INDICES}


def format_index(name: str, value: float | None) -> str:
    display, unit = INDICES[name]
    return f"{display}: {MISSING}" if value is None else f"{display}: {value:.1f} {unit}"

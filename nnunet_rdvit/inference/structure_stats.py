"""The paper's introspection analyses for one case: loops per structure, at boundaries vs interiors, and
expert use per structure — computed on the predicted segmentation.

Boundary voxels of a structure are its voxels with a different label among their 4 in-plane neighbours
(the structure minus its in-plane binary erosion with a cross; the image edge does not count as another
label); interior = the rest of the structure. Only voxels inside nnU-Net's crop, where the maps are
defined, are counted.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_erosion

from nnunet_rdvit.acdc_labels import LABELS
from nnunet_rdvit.inference.introspection import TokenMaps


def boundary_voxel_mask(region: np.ndarray, axis: int) -> np.ndarray:
    """Voxels of ``region`` with an in-plane 4-neighbour outside it (``axis`` = slice axis)."""
    cross = np.zeros((3, 3, 3), dtype=bool)
    centre = [slice(1, 2)] * 3
    for in_plane in (a for a in range(3) if a != axis):
        line = list(centre)
        line[in_plane] = slice(None)
        cross[tuple(line)] = True
    return region & ~binary_erosion(region, structure=cross, border_value=1)


def introspection_summary(labels: np.ndarray, maps: TokenMaps, axis: int) -> dict:
    """Per structure: voxels, mean loops overall / at the boundary / in the interior, and expert shares."""
    summary: dict = {}
    for name, label in LABELS.items():
        region = (labels == label) & maps.covered
        boundary = boundary_voxel_mask(region, axis)
        entry: dict = {"voxels": int(region.sum())}
        if maps.halting is not None:
            interior = region & ~boundary
            entry.update(mean_loops=_mean(maps.halting, region),
                         boundary_voxels=int(boundary.sum()), boundary_mean_loops=_mean(maps.halting, boundary),
                         interior_voxels=int(interior.sum()), interior_mean_loops=_mean(maps.halting, interior))
        if maps.expert_share is not None:
            shares = [_mean(share, region) for share in maps.expert_share]
            entry["expert_share"] = shares
            entry["dominant_expert"] = None if region.sum() == 0 else 1 + int(np.argmax(shares))
        summary[name] = entry
    return summary


def summary_rows(case_id: str, summary: dict) -> list[dict]:
    """Flat rows (one per structure) for the batch's ``introspection.csv``: the paired numbers per case."""
    rows = []
    for name, entry in summary.items():
        row = {"case": case_id, "structure": name, "voxels": entry["voxels"]}
        for key in ("mean_loops", "boundary_mean_loops", "interior_mean_loops", "dominant_expert"):
            if key in entry:
                row[key] = entry[key]
        if "expert_share" in entry:
            row.update({f"expert{i + 1}_share": share for i, share in enumerate(entry["expert_share"])})
        rows.append(row)
    return rows


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(values[mask].mean()) if mask.any() else None

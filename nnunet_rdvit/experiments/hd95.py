"""95th-percentile Hausdorff distance (HD95) in millimetres, which nnU-Net's ``summary.json`` does not contain.

Definition as in MedPy's ``hd95`` (used by most nnU-Net-based papers): surfaces are the voxels a mask loses
under one erosion with the face-connected structuring element; distances are Euclidean in physical units
(voxel spacing applied); HD95 is the 95th percentile of the pooled surface distances in both directions.
It is undefined (NaN) when the prediction or the reference lacks the structure; summaries average over the
cases where it is defined, and the Dice (0 in those cases) carries the miss.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure


def hd95(prediction: np.ndarray, reference: np.ndarray, spacing: Sequence[float]) -> float:
    """HD95 between two boolean masks of the same shape, ``spacing`` per array axis."""
    prediction, reference = np.asarray(prediction, bool), np.asarray(reference, bool)
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction {prediction.shape} and reference {reference.shape} differ in shape")
    if len(spacing) != prediction.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match {prediction.ndim} array axes")
    if not prediction.any() or not reference.any():
        return float("nan")
    distances = np.concatenate([_surface_distances(prediction, reference, spacing),
                                _surface_distances(reference, prediction, spacing)])
    return float(np.percentile(distances, 95))


def _surface_distances(source: np.ndarray, target: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance from every surface voxel of ``source`` to the nearest surface voxel of ``target``."""
    distance_to_target = distance_transform_edt(~_surface(target), sampling=spacing)
    return distance_to_target[_surface(source)]


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~binary_erosion(mask, structure=generate_binary_structure(mask.ndim, 1), iterations=1)

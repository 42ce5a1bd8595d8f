"""Which voxel axis is the slice axis of a short-axis stack, and which slices to show.

Cine short-axis stacks are strongly anisotropic (ACDC: 1.4-1.9 mm in plane, 5-10 mm between slices), so the
slice axis is the one with the largest spacing; for an isotropic volume it is the last (z) axis.
"""

from __future__ import annotations

import numpy as np


def slice_axis(spacing: tuple[float, float, float]) -> int:
    largest = max(spacing)
    return max(axis for axis, s in enumerate(spacing) if np.isclose(s, largest, rtol=1e-3))


def heart_slices(labels: np.ndarray, axis: int) -> list[int]:
    """Indices along ``axis`` of the slices with any foreground label, base to apex in file order."""
    other = tuple(a for a in range(3) if a != axis)
    return np.flatnonzero(labels.any(axis=other)).tolist()


def mid_slice(labels: np.ndarray, axis: int, label: int) -> int:
    """The middle slice of ``label``'s extent along ``axis`` (mid-ventricular for the LV); the volume's middle
    slice if the label is absent."""
    other = tuple(a for a in range(3) if a != axis)
    present = np.flatnonzero((labels == label).any(axis=other))
    if present.size == 0:
        return labels.shape[axis] // 2
    return int(present[len(present) // 2])


def take_slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2D slice, arranged for ``imshow`` (rows = second in-plane axis, columns = first)."""
    return np.take(volume, index, axis=axis).T


def in_plane_aspect(spacing: tuple[float, float, float], axis: int) -> float:
    """``imshow`` aspect (row spacing / column spacing) for slices from :func:`take_slice`."""
    columns, rows = (spacing[a] for a in range(3) if a != axis)
    return rows / columns


def heart_crop(volumes: list[np.ndarray], axis: int, spacing: tuple[float, float, float],
               margin_mm: float = 25.0) -> tuple[slice, slice]:
    """(rows, columns) of :func:`take_slice` slices around the predicted heart of all ``volumes``, with a margin,
    so the figures show the heart rather than the whole field of view. Stray voxels do not widen it: the box
    spans the 0.5th-99.5th percentile of the foreground coordinates. The whole slice if there is no foreground."""
    foreground = np.any([volume > 0 for volume in volumes], axis=0)
    if not foreground.any():
        return slice(None), slice(None)
    coordinates = np.argwhere(foreground)
    columns_axis, rows_axis = (a for a in range(3) if a != axis)
    box = []
    for a in (rows_axis, columns_axis):
        low, high = np.percentile(coordinates[:, a], [0.5, 99.5])
        margin = max(margin_mm / spacing[a], 0.3 * (high - low + 1))
        box.append(slice(max(int(low - margin), 0), min(int(np.ceil(high + margin)) + 1, foreground.shape[a])))
    return box[0], box[1]

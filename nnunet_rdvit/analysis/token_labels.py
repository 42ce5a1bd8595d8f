"""What each token sees of the reference label: a per-token label histogram and the categories built from it.

A token covers a ``token_size`` block of preprocessed voxels; its histogram counts the block's voxels per label.
Voxels with a negative label (padding outside the image) are not counted, and a token with no counted voxel
belongs to no category. For each structure s:

* **boundary(s)**: tokens containing s and at least one other label (background or another structure);
* **interior(s)**: tokens containing only s;
* **background**: tokens containing only label 0.

These are token-level definitions: with 16×16 tokens a "boundary token" is a 16×16 patch that a contour crosses.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

UNLABELLED = -1  # label value of voxels that are not counted (padding)


def token_label_histogram(labels: np.ndarray, token_size: Sequence[int], num_labels: int) -> np.ndarray:
    """Voxel counts per label of every token, ``(*grid, num_labels)``.

    ``labels`` is a tile of integer labels whose shape ``token_size`` divides exactly (as the network's patch
    embedding requires); values below 0 are not counted.
    """
    labels = np.asarray(labels)
    if labels.ndim != len(token_size) or any(n % t for n, t in zip(labels.shape, token_size)):
        raise ValueError(f"token size {tuple(token_size)} must tile the label array of shape {labels.shape}")
    if labels.size and labels.max() >= num_labels:
        raise ValueError(f"label {int(labels.max())} found but only {num_labels} labels declared")
    grid = tuple(n // t for n, t in zip(labels.shape, token_size))
    # (g0, t0, g1, t1, ...) -> (g0, g1, ..., t0 * t1 * ...): one row of voxels per token
    blocks = labels.reshape([x for g, t in zip(grid, token_size) for x in (g, t)])
    order = [2 * i for i in range(len(grid))] + [2 * i + 1 for i in range(len(grid))]
    voxels = blocks.transpose(order).reshape(*grid, -1)
    histogram = np.zeros((*grid, num_labels), dtype=np.int64)
    for label in range(num_labels):
        histogram[..., label] = (voxels == label).sum(-1)
    return histogram


def majority_label(histogram: np.ndarray) -> np.ndarray:
    """Most frequent label per token (ties go to the lower label); -1 where the token counted no voxel."""
    return np.where(histogram.sum(-1) > 0, histogram.argmax(-1), UNLABELLED)


def boundary_token_mask(histogram: np.ndarray, structure: int) -> np.ndarray:
    """Tokens that contain ``structure`` and any other label."""
    present = histogram[..., structure] > 0
    return present & (histogram.sum(-1) > histogram[..., structure])


def interior_token_mask(histogram: np.ndarray, structure: int) -> np.ndarray:
    """Tokens that contain ``structure`` and nothing else."""
    present = histogram[..., structure] > 0
    return present & (histogram.sum(-1) == histogram[..., structure])


def background_token_mask(histogram: np.ndarray) -> np.ndarray:
    """Tokens that contain only label 0."""
    return interior_token_mask(histogram, 0)


def any_boundary_token_mask(histogram: np.ndarray) -> np.ndarray:
    """Tokens containing two or more labels: the union of every structure's boundary tokens."""
    return (histogram > 0).sum(-1) >= 2


def any_interior_token_mask(histogram: np.ndarray) -> np.ndarray:
    """Tokens containing a single foreground label: the union of every structure's interior tokens."""
    return ((histogram > 0).sum(-1) == 1) & (histogram[..., 0] == 0)

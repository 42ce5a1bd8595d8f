"""The introspection PNG of one volume: basal, mid and apical slices with the halting map (loops per voxel)
and, for MoE models, the dominant expert, both under the predicted contours."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap

from nnunet_rdvit.inference.introspection import TokenMaps
from nnunet_rdvit.inference.nifti_io import Volume3D
from nnunet_rdvit.inference.overlay import legend_handles, save_png, show_contours, show_image, show_labels
from nnunet_rdvit.inference.slices import heart_crop, heart_slices, in_plane_aspect, slice_axis, take_slice


def write_introspection_figure(target: Path, title: str, image: Volume3D, labels: np.ndarray,
                               maps: TokenMaps) -> None:
    axis = slice_axis(image.spacing)
    aspect = in_plane_aspect(image.spacing, axis)
    slices = _three_slices(labels, axis)
    crop = heart_crop([labels], axis, image.spacing)
    columns = ["segmentation"] + (["halting"] if maps.halting is not None else []) + \
              (["experts"] if maps.expert_share is not None else [])
    figure, axes = plt.subplots(len(slices), len(columns), figsize=(4.2 * len(columns) + 1.2, 3.9 * len(slices)),
                                squeeze=False)
    loops_max = max(float(maps.halting.max()), 2.0) if maps.halting is not None else 2.0
    dominant = maps.dominant_expert
    n_experts = 0 if maps.expert_share is None else len(maps.expert_share)
    expert_cmap = ListedColormap(plt.get_cmap("tab10").colors[:max(n_experts, 1)])
    for row, (name, index) in enumerate(slices):
        for column, kind in enumerate(columns):
            ax = axes[row, column]
            show_image(ax, take_slice(image.data, axis, index)[crop], aspect)
            label_slice = take_slice(labels, axis, index)[crop]
            if kind == "segmentation":
                show_labels(ax, label_slice, aspect)
                show_contours(ax, label_slice)
                ax.set_ylabel(f"{name} (slice {index + 1})", fontsize=11)
            elif kind == "halting":
                shown = ax.imshow(np.ma.masked_equal(take_slice(maps.halting, axis, index)[crop], 0), cmap="viridis",
                                  vmin=1.0, vmax=loops_max, alpha=0.7, aspect=aspect, interpolation="nearest")
                show_contours(ax, label_slice, colour="white", width=0.8)
                figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="loops")
            else:
                shown = ax.imshow(np.ma.masked_equal(take_slice(dominant, axis, index)[crop], 0), cmap=expert_cmap,
                                  norm=BoundaryNorm(np.arange(0.5, n_experts + 1), n_experts), alpha=0.75,
                                  aspect=aspect, interpolation="nearest")
                show_contours(ax, label_slice, colour="white", width=0.8)
                bar = figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="dominant expert")
                bar.set_ticks(range(1, n_experts + 1))
            if row == 0:
                ax.set_title({"segmentation": "prediction", "halting": "ACT halting map (loops)",
                              "experts": "MoE dominant expert"}[kind], fontsize=12)
    axes[0, 0].legend(handles=legend_handles(), loc="lower left", fontsize=9, framealpha=0.85)
    figure.suptitle(title, fontsize=13)
    figure.tight_layout()
    save_png(figure, target)


def _three_slices(labels: np.ndarray, axis: int) -> list[tuple[str, int]]:
    """Basal, mid and apical slice of the predicted heart (first, middle, last slice with foreground)."""
    found = heart_slices(labels, axis) or [labels.shape[axis] // 2]
    picks = {"first heart slice": found[0], "middle": found[len(found) // 2], "last heart slice": found[-1]}
    unique: dict[int, str] = {}
    for name, index in picks.items():
        unique.setdefault(index, name)
    return [(name, index) for index, name in unique.items()]

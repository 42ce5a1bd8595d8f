"""The per-patient report PNG: mid-ventricular overlays at ED and ES, and the table of cardiac indices."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from nnunet_rdvit.acdc_labels import STRUCTURES
from nnunet_rdvit.inference.cardiac_indices import INDICES
from nnunet_rdvit.inference.nifti_io import Volume3D
from nnunet_rdvit.inference.overlay import legend_handles, save_png, show_contours, show_image, show_labels
from nnunet_rdvit.inference.slices import heart_crop, in_plane_aspect, mid_slice, slice_axis, take_slice
from nnunet_rdvit.number_format import format_number


def write_report(target: Path, patient: str, frames: dict[str, int], images: dict[str, Volume3D],
                 labels: dict[str, np.ndarray], volumes_ml: dict[str, dict[str, float]],
                 indices: dict[str, float | None], model_note: str) -> None:
    """``images``/``labels``/``volumes_ml`` are keyed by phase ("ED", "ES")."""
    axis = slice_axis(images["ED"].spacing)
    crop = heart_crop(list(labels.values()), axis, images["ED"].spacing)
    shown = take_slice(labels["ED"], axis, 0)[crop].shape
    image_height = 5.4 * shown[0] / shown[1] * in_plane_aspect(images["ED"].spacing, axis)  # inches, 5.4 wide
    figure = plt.figure(figsize=(11, image_height + 3.8))
    grid = figure.add_gridspec(2, 2, height_ratios=[image_height, 2.6], hspace=0.08, wspace=0.05,
                               top=1 - 0.7 / (image_height + 3.8), bottom=0.5 / (image_height + 3.8))
    for column, phase in enumerate(("ED", "ES")):
        image = images[phase]
        index = mid_slice(labels[phase], axis, STRUCTURES["LV"])
        aspect = in_plane_aspect(image.spacing, axis)
        label_slice = take_slice(labels[phase], axis, index)[crop]
        ax = figure.add_subplot(grid[0, column])
        show_image(ax, take_slice(image.data, axis, index)[crop], aspect)
        show_labels(ax, label_slice, aspect)
        show_contours(ax, label_slice)
        ax.set_title(f"{phase} (frame {frames[phase]}) — mid-ventricular slice {index + 1} of "
                     f"{image.data.shape[axis]}", fontsize=12)
    figure.axes[0].legend(handles=legend_handles(), loc="lower left", fontsize=10, framealpha=0.85)

    table_ax = figure.add_subplot(grid[1, :])
    table_ax.axis("off")
    rows = [[INDICES[name][0], _value(value), INDICES[name][1]] for name, value in indices.items()]
    rows += [[f"{structure} volume at {phase}", _value(volumes_ml[phase][structure]), "mL"]
             for phase in ("ED", "ES") for structure in STRUCTURES]
    half = (len(rows) + 1) // 2
    left, right = rows[:half], rows[half:] + [["", "", ""]] * (2 * half - len(rows))
    table = table_ax.table(cellText=[a + b for a, b in zip(left, right)],
                           colLabels=["Index", "Value", "Unit"] * 2, loc="upper center", cellLoc="left",
                           colWidths=[0.27, 0.1, 0.06] * 2)
    table.auto_set_font_size(False)
    table.set_fontsize(10.5)
    table.scale(1.0, 1.45)
    figure.suptitle(f"{patient}: cardiac indices from the predicted segmentation", fontsize=14)
    figure.text(0.5, 0.01, model_note, ha="center", fontsize=9, color="#444444", wrap=True)
    save_png(figure, target)


def _value(value: float | None) -> str:
    return format_number(value, ".1f")

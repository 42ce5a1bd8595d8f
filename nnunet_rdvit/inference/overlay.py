"""Drawing helpers shared by the report and introspection figures: image slices, label overlays, saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap, to_rgba  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from nnunet_rdvit.acdc_labels import STRUCTURES  # noqa: E402
from nnunet_rdvit.atomic import atomic_path  # noqa: E402

LABEL_COLOURS = {"RV": "#2f7de1", "MYO": "#2bb24c", "LV": "#e8463a"}


def show_image(ax: plt.Axes, image: np.ndarray, aspect: float) -> None:
    """Grey-scale slice, windowed on its 1st-99.5th percentile (cine MRI has no fixed intensity scale)."""
    low, high = np.percentile(image, [1.0, 99.5]) if image.size else (0.0, 1.0)
    ax.imshow(image, cmap="gray", vmin=low, vmax=max(high, low + 1e-6), aspect=aspect, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def show_labels(ax: plt.Axes, labels: np.ndarray, aspect: float, alpha: float = 0.4) -> None:
    colours = [(0, 0, 0, 0)] + [to_rgba(LABEL_COLOURS[name], alpha) for name in STRUCTURES]
    ax.imshow(labels, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(colours) - 0.5, aspect=aspect,
              interpolation="nearest")


def show_contours(ax: plt.Axes, labels: np.ndarray, colour: str | None = None, width: float = 1.0) -> None:
    for name, label in STRUCTURES.items():
        mask = labels == label
        if mask.any() and not mask.all():
            ax.contour(mask.astype(float), levels=[0.5], colors=[colour or LABEL_COLOURS[name]], linewidths=width)


def legend_handles() -> list[Patch]:
    return [Patch(color=LABEL_COLOURS[name], label=name) for name in STRUCTURES]


def save_png(figure: plt.Figure, target: Path, dpi: int = 110) -> None:
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)

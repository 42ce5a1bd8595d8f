"""The analysis report's PNG figures: depth extrapolation, halting by token category, halting-map examples and
the expert × structure matrix (the training-dynamics figure is the trainers' own ``aux_progress`` plot)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnunet_rdvit.analysis.depth import MEAN  # noqa: E402
from nnunet_rdvit.inference.overlay import LABEL_COLOURS, save_png, show_image  # noqa: E402
from nnunet_rdvit.number_format import format_number  # noqa: E402

SETTING_STYLE = {"act_on": ("-", "ACT on"), "act_off": ("--", "ACT off")}


def label_colour(name: str, label: int) -> str:
    """The ACDC colours for RV / MYO / LV, matplotlib's cycle for other structures."""
    return LABEL_COLOURS.get(name, f"C{label % 10}")


def depth_figure(target: Path, rows: Sequence[dict], settings: Sequence[str], structures: Mapping[str, int],
                 trained_loops: int) -> None:
    loops = [row["loops"] for row in rows]
    figure, ax = plt.subplots(figsize=(7.5, 4.5))
    lines = [(name, label_colour(name, label)) for name, label in structures.items()] + [(MEAN, "black")]
    for setting in settings:
        style, setting_name = SETTING_STYLE[setting]
        for name, colour in lines:
            means = np.array([_none_to_nan(row[setting]["dice"][name]["mean"]) for row in rows])
            stds = np.array([_none_to_nan(row[setting]["dice"][name]["std"]) for row in rows])
            ax.plot(loops, means, style, color=colour, marker="o", markersize=4, linewidth=2 if name == MEAN else 1.2,
                    label=f"{name} ({setting_name})")
            if name == MEAN:
                ax.fill_between(loops, means - stds, means + stds, color=colour, alpha=0.08)
    ax.axvline(trained_loops, color="grey", linestyle=":", label=f"trained T = {trained_loops}")
    ax.set_xlabel("loops at inference")
    ax.set_ylabel("Dice (preprocessed space)")
    ax.set_xticks(loops)
    ax.set_ylim(0, 1)
    ax.set_title("Depth extrapolation: Dice against inference loops (mean over cases; band: ± std of the mean Dice)",
                 fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    save_png(figure, target)


def halting_figure(target: Path, per_case: Sequence[dict], structures: Sequence[str]) -> None:
    """Mean loops per category, one dot per case and the mean over cases as a bar."""
    categories = [("background", lambda c: c["background"])]
    for name in structures:
        categories += [(f"{name}\nboundary", lambda c, n=name: c["structures"][n]["boundary"]),
                       (f"{name}\ninterior", lambda c, n=name: c["structures"][n]["interior"])]
    figure, ax = plt.subplots(figsize=(1.1 * len(categories) + 2, 4.2))
    for index, (name, pick) in enumerate(categories):
        values = [pick(case)["mean_loops"] for case in per_case if pick(case)["mean_loops"] is not None]
        colour = "C0" if "boundary" in name else ("C1" if "interior" in name else "C7")
        if values:
            ax.bar(index, np.mean(values), color=colour, alpha=0.35, width=0.7)
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(index + np.asarray(jitter), values, color=colour, s=14, zorder=3)
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels([name for name, _ in categories], fontsize=9)
    ax.set_ylabel("mean loops per token")
    ax.set_title("ACT halting by token category (dots: cases; bars: mean)", fontsize=10)
    save_png(figure, target)


def halting_examples_figure(target: Path, examples: Sequence[dict], label_names: Mapping[int, str],
                            max_loops: float) -> None:
    """Per example case: the image with the reference contours, and the halting map under the same contours.

    Each example holds ``name``, ``image``, ``labels`` and ``halting`` (2D slices) and ``aspect``."""
    figure, axes = plt.subplots(len(examples), 2, figsize=(8.6, 4.0 * len(examples)), squeeze=False)
    for row, example in enumerate(examples):
        for column in range(2):
            ax = axes[row, column]
            show_image(ax, example["image"], example["aspect"])
            if column == 1:
                shown = ax.imshow(example["halting"], cmap="viridis", vmin=1.0, vmax=max(max_loops, 2.0), alpha=0.7,
                                  aspect=example["aspect"], interpolation="nearest")
                figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="loops")
            _contours(ax, example["labels"], label_names, "white" if column == 1 else None)
        axes[row, 0].set_ylabel(f"{example['name']}\n(slice {example['slice'] + 1})", fontsize=10)
    axes[0, 0].set_title("image and reference contours", fontsize=11)
    axes[0, 1].set_title("ACT halting map (loops per token)", fontsize=11)
    figure.tight_layout()
    save_png(figure, target)


def experts_figure(target: Path, result: dict, label_names: Sequence[str]) -> None:
    """Heatmaps of where each structure's routed slots go (columns sum to 1) and what each expert sees."""
    panels = [("share_of_structure", "share of each structure's routed slots"),
              ("share_of_expert", "share of each expert's routed slots")]
    figure, axes = plt.subplots(1, 2, figsize=(4.0 + 1.6 * len(label_names), 0.5 * len(result["matrix"]) + 2.8))
    for ax, (key, title) in zip(axes, panels):
        share = np.asarray(result[key])
        ax.imshow(share, cmap="magma", vmin=0, vmax=1, aspect="auto")
        for (expert, label), value in np.ndenumerate(share):
            ax.text(label, expert, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if value < 0.6 else "black")
        ax.set_xticks(range(len(label_names)))
        ax.set_xticklabels(label_names)
        ax.set_yticks(range(share.shape[0]))
        ax.set_yticklabels([f"expert {i}" for i in range(share.shape[0])])
        ax.set_title(title, fontsize=10)
    shuffled = result["shuffled_normalised_mutual_information"]
    figure.suptitle(f"MoE expert × structure (token majority label): normalised MI "
                    f"{result['normalised_mutual_information']:.3f}, shuffled "
                    f"{format_number(shuffled, '.3f')}", fontsize=10)
    figure.tight_layout()
    save_png(figure, target)


def _contours(ax: plt.Axes, labels: np.ndarray, label_names: Mapping[int, str], colour: str | None) -> None:
    for label, name in label_names.items():
        mask = labels == label
        if label and mask.any() and not mask.all():
            ax.contour(mask.astype(float), levels=[0.5], colors=[colour or label_colour(name, label)], linewidths=1.0)


def _none_to_nan(value: float | None) -> float:
    return np.nan if value is None else value

"""Bland–Altman plots of predicted vs ground-truth cardiac indices, one panel per index."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from nnunet_rdvit.inference.cardiac_indices import INDICES
from nnunet_rdvit.inference.overlay import save_png
from nnunet_rdvit.number_format import format_number


def write_bland_altman(target: Path, pairs: list[dict], statistics: dict[str, dict]) -> None:
    columns = 3
    rows = -(-len(INDICES) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 3.9 * rows), squeeze=False)
    for ax, (index, (display, unit)) in zip(axes.flat, INDICES.items()):
        both = [(p[f"{index}_predicted"], p[f"{index}_ground_truth"]) for p in pairs
                if p[f"{index}_predicted"] is not None and p[f"{index}_ground_truth"] is not None]
        stats = statistics[index]
        ax.set_title(f"{display} ({unit})", fontsize=11)
        ax.set_xlabel(f"mean of predicted and ground truth ({unit})", fontsize=9)
        ax.set_ylabel(f"predicted − ground truth ({unit})", fontsize=9)
        ax.grid(alpha=0.3)
        if not both:
            ax.text(0.5, 0.5, "no pairs", ha="center", va="center", transform=ax.transAxes)
            continue
        predicted, truth = (np.array(values, dtype=float) for values in zip(*both))
        ax.scatter((predicted + truth) / 2, predicted - truth, s=22, alpha=0.8, color="#2f6db5", edgecolors="none")
        ax.axhline(stats["bias"], color="#c0392b", linewidth=1.4)
        ax.axhline(0.0, color="#888888", linewidth=0.8)
        if stats["sd"] is not None:
            for limit in (stats["loa_lower"], stats["loa_upper"]):
                ax.axhline(limit, color="#c0392b", linewidth=1.0, linestyle="--")
        ax.text(0.02, 0.97, _legend(stats), transform=ax.transAxes, va="top", fontsize=8.5,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#cccccc"})
    for ax in list(axes.flat)[len(INDICES):]:
        ax.axis("off")
    figure.suptitle(f"Bland–Altman: predicted vs ground-truth cardiac indices (n = {len(pairs)} patients; "
                    f"solid: bias, dashed: bias ± 1.96 SD)", fontsize=12)
    figure.tight_layout()
    save_png(figure, target)


def _legend(stats: dict) -> str:
    r = format_number(stats["pearson_r"], ".3f")
    lines = [f"n = {stats['n']}, r = {r}", f"bias = {stats['bias']:.2f}"]
    if stats["sd"] is not None:
        lines.append(f"LoA = [{stats['loa_lower']:.2f}, {stats['loa_upper']:.2f}]")
    return "\n".join(lines)

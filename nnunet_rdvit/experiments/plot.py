"""The figures of the experiments: overall Dice against the fraction of training patients (low-data grids) and
against training time (learning curves)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

from nnunet_rdvit.atomic import atomic_path
from nnunet_rdvit.experiments.aggregate import OVERALL, SummaryRow

_MARKERS = ("o", "s", "^", "D", "v")


def plot_dice_vs_fraction(rows: Sequence[SummaryRow], trainers: Sequence[str], path: Path, title: str) -> None:
    """One panel per configuration, one line per trainer (in ``trainers`` order), error bars ± std over folds.

    The x axis is logarithmic, so 10, 25, 50 and 100 % are spread evenly enough to read; trainers are shifted
    slightly sideways and drawn with different markers so that overlapping error bars stay distinguishable.
    """
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state is touched

    overall = [row for row in rows if row.structure == OVERALL]
    configurations = sorted({row.configuration for row in overall})
    percents = sorted({row.percent for row in overall})
    figure = Figure(figsize=(max(6.4, 5.2 * len(configurations)), 4.6))
    axes = figure.subplots(1, max(1, len(configurations)), squeeze=False, sharey=True)
    for axis, configuration in zip(axes[0], configurations):
        for index, trainer in enumerate(trainers):
            points = sorted((row.percent, row.dice_mean, row.dice_std, row.n) for row in overall
                            if row.trainer == trainer and row.configuration == configuration)
            if not points:
                continue
            x, y, error, _ = zip(*points)
            shift = 1.025 ** (index - (len(trainers) - 1) / 2)
            axis.errorbar([value * shift for value in x], y, yerr=[0.0 if math.isnan(e) else e for e in error],
                          marker=_MARKERS[index % len(_MARKERS)], capsize=4, linewidth=1.8, label=trainer,
                          color=f"C{index}")
        folds = sorted({row.n for row in overall if row.configuration == configuration})
        axis.set_title(f"{configuration} (folds per point: {', '.join(map(str, folds))})", fontsize=10)
        axis.set_xscale("log")
        axis.set_xticks(percents, [f"{p} %" for p in percents])
        axis.minorticks_off()
        axis.set_xlabel("training patients used")
        axis.grid(True, alpha=0.3)
    _save(figure, axes[0][0], "validation Dice, mean over structures", title, path)


def plot_learning_curves(series: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], path: Path,
                         title: str) -> None:
    """One panel per split (validation, test), one line per trainer: overall Dice against minutes of training.

    ``series[split][trainer]`` is ``[(minutes, dice), ...]``; trainers keep the same colour and marker in every
    panel, in the order they first appear.
    """
    from matplotlib.figure import Figure

    trainers = list(dict.fromkeys(trainer for by_trainer in series.values() for trainer in by_trainer))
    figure = Figure(figsize=(max(6.4, 5.2 * len(series)), 4.6))
    axes = figure.subplots(1, max(1, len(series)), squeeze=False, sharey=True)
    for axis, (split, by_trainer) in zip(axes[0], series.items()):
        for trainer, points in by_trainer.items():
            index = trainers.index(trainer)
            x, y = zip(*sorted(points))
            axis.plot(x, y, marker=_MARKERS[index % len(_MARKERS)], linewidth=1.8, label=trainer, color=f"C{index}")
        axis.set_title(split, fontsize=10)
        axis.set_xlabel("training time (minutes)")
        axis.set_xlim(left=0)
        axis.grid(True, alpha=0.3)
    _save(figure, axes[0][0], "Dice, mean over structures", title, path)


def _save(figure, first_axis, ylabel: str, title: str, path: Path) -> None:
    """Label, legend and title (wrapped to the figure's width), then the PNG written atomically."""
    first_axis.set_ylabel(ylabel)
    first_axis.legend(loc="best", fontsize=9)
    characters = int(figure.get_figwidth() * 12)  # about what fits at 10 pt
    figure.suptitle(textwrap.fill(title, characters), fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)

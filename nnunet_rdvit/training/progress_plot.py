"""``aux_progress.png``: the RD-ViT training curves nnU-Net's ``progress.png`` does not draw."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from nnunet_rdvit.atomic import atomic_path


def plot_aux_progress(log: Mapping[str, Sequence], output_file: str | Path) -> None:
    """Ponder time/loss, balance and z-loss, and expert load per epoch, in one figure.

    ``log`` maps keys (``ponder_time``, ``ponder_loss``, ``halting_prior_loss``, ``balance_loss``, ``z_loss``,
    ``expert_load``) to
    one value per epoch; missing or empty keys are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = []
    if log.get("ponder_time"):
        panels.append(("ACT", [("ponder_time", "mean loops per token"), ("ponder_loss", "ponder loss (N + R)")]))
    if log.get("halting_prior_loss"):
        panels.append(("ACT halting prior", [("halting_prior_loss", "KL(p_t || prior), summed over loops")]))
    if log.get("balance_loss"):
        panels.append(("MoE losses", [("balance_loss", "balance loss (1 = balanced)"), ("z_loss", "router z-loss")]))
    if log.get("expert_load"):
        panels.append(("MoE expert load", []))
    if not panels:
        return
    with plt.style.context("default"):  # nnU-Net's own plot leaves seaborn's huge fonts in rcParams
        fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
        _draw(axes[:, 0], panels, log, np)
        fig.tight_layout()
        with atomic_path(output_file) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _draw(axes, panels, log, np) -> None:
    for ax, (title, series) in zip(axes, panels):
        if title == "MoE expert load":
            load = np.asarray(log["expert_load"], dtype=float)
            epochs = np.arange(load.shape[0])
            ax.stackplot(epochs, load.T, labels=[f"expert {i}" for i in range(load.shape[1])])
            ax.set_ylim(0, 1)
            ax.set_ylabel("fraction of routed tokens")
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        else:
            for index, (key, label) in enumerate(series):
                values = log.get(key)
                if not values:
                    continue
                target = ax if index == 0 else ax.twinx()
                target.plot(range(len(values)), values, color=f"C{index}", marker="o", markersize=3, label=label)
                target.set_ylabel(label, color=f"C{index}")
        ax.set_title(title)
        ax.set_xlabel("epoch")

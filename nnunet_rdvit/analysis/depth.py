"""Depth extrapolation: Dice per structure against the number of loops run at inference, ACT on and off.

Each setting predicts the preprocessed case through nnU-Net's own sliding window (Gaussian weighting, tile
step, optional mirroring), with the network called at a fixed ``n_loops`` and halting on or off, and is scored
against the reference label on the preprocessed grid. With ACT on, ``n_loops`` caps the loops (a token still
halts on its own); with ACT off every token runs all ``n_loops`` and the output is the final state. The paper
claims that running more loops than the T trained causes no degradation.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nnunet_rdvit.analysis.describe import describe
from nnunet_rdvit.inference.model import LoadedModel
from nnunet_rdvit.inference.tiling import torch_threads_as_nnunet

MEAN = "mean"  # the per-case mean over structures


class FixedDepthNetwork(nn.Module):
    """Calls the wrapped network with a fixed ``n_loops`` and ``act``, so nnU-Net's predictor (which only
    calls ``network(x)``) runs it at that depth; records the mean loops per token over its calls."""

    def __init__(self, network: nn.Module, n_loops: int, act: bool):
        super().__init__()
        self.network = network
        self.n_loops = n_loops
        self.act = act
        self.loops_per_token: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, aux = self.network(x, n_loops=self.n_loops, act=self.act, return_aux=True)
        self.loops_per_token.append(float(aux.ponder_time))
        return logits


def predict_at_depth(model: LoadedModel, data: torch.Tensor, n_loops: int, act: bool) -> tuple[np.ndarray, float]:
    """nnU-Net's sliding-window prediction of ``data`` (C, *spatial) at a fixed depth with the network's current
    weights (the analysed fold's, loaded once by :func:`~nnunet_rdvit.analysis.run.analyze`): (labels, mean loops
    per token over the tiles)."""
    predictor = model.predictor
    network = predictor.network
    fixed = FixedDepthNetwork(network, n_loops, act)
    predictor.network = fixed
    try:
        with torch_threads_as_nnunet():
            logits = predictor.predict_sliding_window_return_logits(data)
    finally:
        predictor.network = network
    return logits.float().argmax(0).cpu().numpy(), float(np.mean(fixed.loops_per_token))


def dice_per_structure(prediction: np.ndarray, reference: np.ndarray,
                       structures: Mapping[str, int]) -> dict[str, float | None]:
    """Dice of each structure; ``None`` where it is absent from both (nnU-Net's convention: undefined)."""
    scores: dict[str, float | None] = {}
    for name, label in structures.items():
        predicted, expected = prediction == label, reference == label
        total = int(predicted.sum()) + int(expected.sum())
        scores[name] = 2.0 * int((predicted & expected).sum()) / total if total else None
    known = [s for s in scores.values() if s is not None]
    scores[MEAN] = float(np.mean(known)) if known else None
    return scores


def depth_rows(per_case: Sequence[dict], loops: Sequence[int], trained_loops: int,
               settings: Sequence[str], structures: Sequence[str]) -> list[dict]:
    """One row per loop count: per setting (``act_on`` / ``act_off``) the mean ± std over cases of each
    structure's Dice, of the per-case mean Dice, and of the loops per token actually run."""
    rows = []
    for n_loops in loops:
        row: dict = {"loops": n_loops, "trained": n_loops == trained_loops}
        for setting in settings:
            results = [r for r in per_case if r["loops"] == n_loops and r["setting"] == setting]
            row[setting] = {
                "dice": {name: describe([r["dice"][name] for r in results]) for name in [*structures, MEAN]},
                "loops_per_token": describe([r["loops_per_token"] for r in results]),
            }
        rows.append(row)
    return rows

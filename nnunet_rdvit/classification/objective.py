"""The classification training objective: cross-entropy plus each model's weighted auxiliary losses.

One objective serves every classifier because the auxiliaries come by name in the model's
``AuxOutputs``: ACT's ponder loss, MoE's balance and z-losses (RD-ViT), the ranker's stability and
depth-uniformity losses (Edge-RecViT, whose logits already carry the c̄ scaling of L_cce). A model
without a component reports ``None`` for it and the term drops out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_rdvit.unwrap import unwrap_network


@dataclass
class LossWeights:
    ponder_loss: float = 0.01
    balance_loss: float = 0.01
    z_loss: float = 0.001
    stability_loss: float = 0.01  # λ_stb (Edge-RecViT)
    uniformity_loss: float = 0.1  # λ_du (Edge-RecViT)


# Reported alongside the loss when the model produces them.
_DIAGNOSTICS = ("ponder_time", "balance_loss", "stability_loss", "uniformity_loss", "confidence")


class ClassificationObjective:
    """loss = CE(logits, targets) + Σ λ_name · aux.name.

    ``targets`` are class indices (label smoothing applies) or, after mixup/cutmix, per-class
    probabilities (smoothing is then already part of the targets).
    """

    def __init__(self, weights: LossWeights | None = None, label_smoothing: float = 0.1):
        self.weights = weights or LossWeights()
        self.label_smoothing = label_smoothing

    def __call__(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, progress: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = model(images)  # through DDP's forward when distributed; the auxiliaries ride beside it
        aux = unwrap_network(model).last_aux
        smoothing = self.label_smoothing if targets.ndim == 1 else 0.0
        cross_entropy = F.cross_entropy(logits.float(), targets, label_smoothing=smoothing)
        loss = cross_entropy
        for name, weight in vars(self.weights).items():
            value = getattr(aux, name, None)
            if value is not None and weight:
                loss = loss + weight * value.float()
        logs = {"cross_entropy": cross_entropy.detach()}
        logs.update({name: getattr(aux, name).detach().float().mean() for name in _DIAGNOSTICS
                     if getattr(aux, name, None) is not None})
        return loss, logs

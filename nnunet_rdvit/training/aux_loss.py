"""nnU-Net's segmentation loss plus the weighted auxiliary losses of the latest forward pass."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from nnunet_rdvit.networks.aux_outputs import AuxOutputs


class AuxiliaryLoss(nn.Module):
    """loss = seg_loss(output, target) + λ_ponder·ponder + λ_balance·balance + λ_z·z.

    nnU-Net's train and validation steps call ``self.loss(output, target)`` with the logits only; the
    auxiliaries are read from the network (``last_aux``) through ``aux_source``, a plain callable so
    that the network is not registered as a sub-module of the loss.
    """

    def __init__(
        self,
        segmentation_loss: nn.Module,
        aux_source: Callable[[], AuxOutputs | None],
        ponder_weight: float = 0.01,
        balance_weight: float = 0.01,
        z_loss_weight: float = 0.001,
        halting_prior_weight: float = 0.0,
    ):
        super().__init__()
        self.segmentation_loss = segmentation_loss
        self.aux_source = aux_source
        self.weights = {"ponder_loss": ponder_weight, "balance_loss": balance_weight, "z_loss": z_loss_weight,
                        "halting_prior_loss": halting_prior_weight}

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.segmentation_loss(output, target)
        aux = self.aux_source()
        if aux is None:
            return loss
        for name, weight in self.weights.items():
            value = getattr(aux, name)
            if value is not None and weight:
                loss = loss + weight * value.to(loss.dtype)
        return loss

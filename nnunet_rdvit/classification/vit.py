"""ViT / DeiT baseline: ``depth`` unique pre-norm blocks (Dosovitskiy et al. 2021; Touvron et al. 2021)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nnunet_rdvit.classification.base import TokenClassifier, fixed_depth
from nnunet_rdvit.networks.aux_outputs import AuxOutputs


class VisionTransformer(TokenClassifier):
    """The baseline every recurrent classifier is compared with; built from the same
    :class:`TransformerBlock` so that a comparison isolates the recurrence.

    ``kwargs``: the shared arguments of :class:`TokenClassifier`. At the Ti/S/B geometries (192/384/768
    wide, 3/6/12 heads, 12 blocks, GELU MLP ×4) the parameter counts are those of timm's
    ``deit_*_patch16_224`` less its CLS position row (5.7 M / 22.1 M / 86.6 M).
    """

    def __init__(self, depth: int = 12, **kwargs: Any):
        super().__init__(**kwargs)
        self.blocks = nn.ModuleList(self.new_block() for _ in range(depth))
        self.init_weights()

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, states: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, AuxOutputs]:
        fixed_depth(self, n_loops)
        trajectory = self.trajectory(tokens)
        if states is not None:
            states.extend(trajectory[1:])
        return trajectory[-1], AuxOutputs()

    def intermediate_modules(self, n_loops: int | None = None) -> list[str]:
        fixed_depth(self, n_loops)
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    def block_groups(self) -> list[tuple[str, tuple[int, ...] | None]]:
        return [(r"^blocks\.(\d+)", None)]

    def trajectory(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """The embedded tokens followed by the output of every block (``depth`` + 1 states).

        These per-layer activations are what a Raptor student regresses (:mod:`.raptor`).
        """
        states = [tokens]
        for block in self.blocks:
            states.append(self.run_block(block, states[-1])[0])
        return states

"""Auxiliary outputs of a forward pass: the losses and maps nnU-Net's logits-only interface cannot carry."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class AuxOutputs:
    """Per-forward auxiliaries. Fields are ``None`` when the network has no such component.

    Token maps are shaped like the token grid, (B, *grid), so they can be drawn over the image.
    """

    ponder_loss: torch.Tensor | None = None  # Graves' N + R averaged over tokens (differentiable)
    halting_prior_loss: torch.Tensor | None = None  # Σ over loops of KL(p_t || prior hazard), averaged over tokens
    ponder_time: torch.Tensor | None = None  # mean loops executed per token, the paper's figure
    halting_steps: torch.Tensor | None = None  # (B, *grid) loops each token executed
    loops_executed: int | None = None  # iterations of the loop actually run (≤ n_loops)
    balance_loss: torch.Tensor | None = None  # MoE balance loss averaged over loops (1 = balanced)
    z_loss: torch.Tensor | None = None  # router z-loss averaged over loops
    expert_counts: torch.Tensor | None = None  # (B, *grid, E) how often each token was routed to each expert

    def on_grid(self, grid: Sequence[int], prefix_tokens: int = 0) -> "AuxOutputs":
        """A copy whose per-token maps, (B, P + N[, E]) as the core returns them, lie on the token grid,
        (B, *grid[, E]), without the ``prefix_tokens`` (a classifier's CLS token) that precede the patches."""
        maps = {name: getattr(self, name)[:, prefix_tokens:].unflatten(1, tuple(grid))
                for name in ("halting_steps", "expert_counts") if getattr(self, name) is not None}
        return dataclasses.replace(self, **maps)

    @property
    def expert_load(self) -> torch.Tensor | None:
        """Fraction of routed slots per expert, (E,)."""
        if self.expert_counts is None:
            return None
        counts = self.expert_counts.flatten(0, -2).sum(0).float()
        return counts / counts.sum().clamp_min(1.0)

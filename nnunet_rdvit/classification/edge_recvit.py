"""Edge-RecViT (CVPR 2026): head block + one shared block looped per token + tail block, with a
pre-positioned ranker that gives every patch token its own depth.

From the paper: L = 12 layers as head + shared ×10 + tail; the ranker is a bias-free 2-layer MLP
(C → 2C → L, GELU) on the embedded patch tokens; d_i = argmax softmax(z_i); token i runs the head,
then the shared block while its depth allows, and the tail only at depth L; the CLS token is not
ranked and takes all L layers; the losses are

    L_stb = mean_i (logsumexp_l z_il)²
    L_du  = L · Σ_l E_l A_l,   E_l = mean_i p_il,  A_l = fraction of tokens with d_i = l
    L_cce = CE(c̄ · logits, y), c̄ = mean_i max_l p_il (per image)

and the objective is L_cce + λ_stb L_stb + λ_du L_du; no mixup/cutmix (label mixing breaks the
ranker's supervision). Reconstruction choices (the paper is silent): tokens that have reached their
depth are frozen but remain keys/values for the tokens still running (the shared block's token-sparse
mode); E_l and A_l are taken over all patch tokens of the batch; λ defaults are ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_rdvit.classification.base import TokenClassifier
from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.networks.block import TransformerBlock


@dataclass
class EdgeAux(AuxOutputs):
    """AuxOutputs plus the ranker's losses. ``halting_steps`` holds each token's depth in layers."""

    stability_loss: torch.Tensor | None = None  # L_stb
    uniformity_loss: torch.Tensor | None = None  # L_du; 1 when tokens spread evenly over depths
    confidence: torch.Tensor | None = None  # (B,) c̄, the factor the logits are scaled by


def stability_loss(depth_logits: torch.Tensor) -> torch.Tensor:
    """L_stb = mean over tokens of (logsumexp_l z_il)²: keeps the ranker's logits small and smooth."""
    return torch.logsumexp(depth_logits.float(), dim=-1).pow(2).mean()


def depth_uniformity_loss(depth_probs: torch.Tensor, depth_index: torch.Tensor) -> torch.Tensor:
    """L_du = L · Σ_l E_l A_l over all tokens given; gradient flows through E only (A is a count)."""
    num_depths = depth_probs.shape[-1]
    expected = depth_probs.reshape(-1, num_depths).mean(dim=0)
    actual = torch.bincount(depth_index.flatten(), minlength=num_depths).to(expected) / depth_index.numel()
    return num_depths * (expected * actual).sum()


class EdgeAwareRanker(nn.Module):
    """Z = W₂ GELU(W₁ X), W₁: C → 2C, W₂: 2C → L, both without bias: one logit per depth per token."""

    def __init__(self, dim: int, num_depths: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 2 * dim, bias=False)
        self.fc2 = nn.Linear(2 * dim, num_depths, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(tokens)))


class EdgeRecViT(TokenClassifier):
    """Per-token dynamic depth over three parameter sets; ``ranker=False`` is the paper's "no ranker"
    ablation (every token at full depth).

    ``n_loops`` at call time is the number of shared-block passes for the CLS token and the tokens at
    depth L (trained: ``depth`` − 2); a token of depth d < L gets min(d − 1, n_loops) passes. The logits
    are returned already scaled by c̄ (the paper's Y_C), so plain cross-entropy on them *is* L_cce;
    the scaling is positive per image and leaves top-k accuracy unchanged. ``kwargs``: the shared
    arguments of :class:`TokenClassifier`.
    """

    def __init__(self, depth: int = 12, ranker: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        if depth < 3:
            raise ValueError(f"depth must be ≥ 3 (head + shared + tail), got {depth}")
        self.depth = depth
        self.num_loops = depth - 2
        self.head_block, self.shared_block, self.tail_block = (self.new_block() for _ in range(3))
        self.ranker = EdgeAwareRanker(self.embed_dim, depth) if ranker else None
        self.init_weights()

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, states: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, EdgeAux]:
        shared_passes = self._shared_passes(n_loops)
        aux = EdgeAux(loops_executed=shared_passes)
        if self.ranker is None:
            depth = torch.full(tokens.shape[:2], self.depth, dtype=torch.long, device=tokens.device)
        else:
            depth_logits = self.ranker(tokens[:, 1:])
            probs = depth_logits.float().softmax(dim=-1)
            confidence, index = probs.max(dim=-1)
            depth = torch.cat([torch.full_like(index[:, :1], self.depth), index + 1], dim=1)  # CLS: all L
            aux.stability_loss = stability_loss(depth_logits)
            aux.uniformity_loss = depth_uniformity_loss(probs, index)
            aux.confidence = confidence.mean(dim=1)

        at_full_depth = depth == self.depth
        passes = torch.where(at_full_depth, shared_passes, (depth - 1).clamp(max=shared_passes))
        schedule = [(self.head_block, None), *((self.shared_block, passes > step) for step in range(shared_passes)),
                    (self.tail_block, at_full_depth)]
        for block, active in schedule:
            tokens = self._run_block(block, tokens, active)
            if states is not None:
                states.append(tokens)

        layers = 1 + passes + at_full_depth.long()
        aux.halting_steps = layers
        aux.ponder_time = layers[:, 1:].float().mean()
        return tokens, aux

    def _shared_passes(self, n_loops: int | None) -> int:
        shared_passes = self.num_loops if n_loops is None else int(n_loops)
        if shared_passes < 0:
            raise ValueError(f"n_loops must be ≥ 0, got {shared_passes}")
        return shared_passes

    def _run_block(self, block: TransformerBlock, tokens: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        """Update the active tokens only (all without a mask); the others stay as they are but are still
        attended to. The block computes an all-active mask densely."""
        if active is None:
            return self.run_block(block, tokens)[0]
        return tokens.index_put((active,), self.run_block(block, tokens, active)[0])

    def intermediate_modules(self, n_loops: int | None = None) -> list[str]:
        """Layer by layer: the head block, the shared block once per pass, the tail block; a token past its
        depth keeps its state."""
        return ["head_block"] + ["shared_block"] * self._shared_passes(n_loops) + ["tail_block"]

    def block_groups(self) -> list[tuple[str, tuple[int, ...] | None]]:
        return [(r"^ranker\.", (0,)), (r"^head_block\.", (1,)), (r"^shared_block\.", (2,)), (r"^tail_block\.", (3,))]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits scaled by the ranker's mean confidence c̄ of the latest forward (Y_C = c̄ · Y)."""
        out = super().forward_head(x, pre_logits)
        confidence = getattr(self._pass[0], "confidence", None) if self._pass is not None else None
        if pre_logits or self.num_classes == 0 or confidence is None:
            return out
        scale = confidence[:, None] if self.global_pool else confidence[:, None, None]  # '' keeps every token
        return out * scale.to(out.dtype)

"""bViT: one transformer block applied ``num_loops`` times (the paper's steps) to the patch sequence (arXiv:2605.10661).

The paper's claim is that a 12-step bViT-B nearly matches ViT-B with a tenth of the parameters, and
that width recovers more of ViT's accuracy than extra steps. Its step-conditioned variant ("TE") is
not specified in detail; here it is a learned per-step embedding added to the token state before
each step, as the Universal Transformer adds its timestep signal. Steps beyond the trained ones reuse
the last embedding, so inference can run deeper than training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nnunet_rdvit.classification.base import TokenClassifier
from nnunet_rdvit.networks.aux_outputs import AuxOutputs


class BlockRecurrentViT(TokenClassifier):
    """CLS-token classifier whose whole depth is one shared block, looped; ``time_embedding`` gives bViT-TE.

    Args:
        num_loops: the paper's steps, the passes of the shared block it is built and trained with.
        time_embedding: add a learned per-step embedding before each step (bViT-TE).
        kwargs: the shared arguments of :class:`TokenClassifier`.
    """

    def __init__(self, num_loops: int = 12, time_embedding: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if num_loops < 1:
            raise ValueError(f"num_loops must be ≥ 1, got {num_loops}")
        self.num_loops = num_loops
        self.block = self.new_block()
        self.step_embed = nn.Parameter(torch.zeros(num_loops, self.embed_dim)) if time_embedding else None
        self.init_weights()
        if self.step_embed is not None:
            nn.init.trunc_normal_(self.step_embed, std=0.02)

    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay() | ({"step_embed"} if self.step_embed is not None else set())

    def _steps(self, n_loops: int | None) -> int:
        steps = self.num_loops if n_loops is None else int(n_loops)
        if steps < 1:
            raise ValueError(f"n_loops must be ≥ 1, got {steps}")
        return steps

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, states: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, AuxOutputs]:
        steps = self._steps(n_loops)
        for step in range(steps):
            if self.step_embed is not None:
                tokens = tokens + self.step_embed[min(step, self.num_loops - 1)]
            tokens, _ = self.run_block(self.block, tokens)
            if states is not None:
                states.append(tokens)
        return tokens, AuxOutputs(loops_executed=steps)

    def intermediate_modules(self, n_loops: int | None = None) -> list[str]:
        """The shared block, once per step."""
        return ["block"] * self._steps(n_loops)

    def block_groups(self) -> list[tuple[str, tuple[int, ...] | None]]:
        return [(r"^block\.|^step_embed", None)]

"""RD-ViT classifier: the segmentation model's recurrent core (LTI injection, ACT, depth-wise LoRA,
optional MoE) under a CLS-token or average-pooled head. See DESIGN §2.1 for the core itself."""

from __future__ import annotations

from typing import Any

import torch

from nnunet_rdvit.classification.base import TokenClassifier
from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.networks.block import make_feedforward
from nnunet_rdvit.networks.recurrent_core import RecurrentCore


class RecurrentDepthViT(TokenClassifier):
    """Patch embedding → :class:`RecurrentCore` (one shared block, up to ``num_loops`` loops) → head.

    The CLS token takes part in ACT like every other token: its output is the ACT-weighted mixture
    of its states. ``moe_experts`` > 0 makes the shared block's feed-forward a Mixture of Experts.
    The halting bias starts at −2 (p ≈ 0.12, so ACT begins near the full depth and learns to stop
    early); ``kwargs``: the shared arguments of :class:`TokenClassifier`.
    """

    def __init__(
        self,
        num_loops: int = 12,
        ffn: str = "swiglu",
        lora_rank: int = 8,
        act: bool = True,
        act_threshold: float = 0.99,
        halting_bias_init: float = -2.0,
        min_loops: int = 1,
        lti: bool = True,
        moe_experts: int = 0,
        moe_top_k: int = 2,
        moe_shared_expert: bool = False,
        moe_bias_update_rate: float = 0.0,
        checkpoint_loops: bool = False,
        **kwargs: Any,
    ):
        super().__init__(ffn=ffn, **kwargs)
        self.trained_loops = num_loops
        feedforward = make_feedforward(ffn, self.embed_dim, self.mlp_ratio, moe_experts, moe_top_k,
                                       moe_shared_expert, moe_bias_update_rate)
        self.core = RecurrentCore(
            self.new_block(feedforward), self.embed_dim, num_loops, lora_rank, act, act_threshold,
            halting_bias_init, min_loops, lti, self.norm_kind, checkpoint_loops,
        )
        self.grad_checkpointing = checkpoint_loops
        self.init_weights()
        self.core.reset_adaptive_parameters()  # halting bias and zero LoRA `up`, overwritten by init_weights

    def no_weight_decay(self) -> set[str]:
        """The per-loop LoRA scales start at 1: decaying them would shrink every loop's adaptation."""
        return super().no_weight_decay() | ({"core.lora.scales"} if self.core.lora is not None else set())

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint each loop of the core (the ``checkpoint_loops`` constructor argument)."""
        super().set_grad_checkpointing(enable)
        self.core.checkpoint_loops = enable

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, states: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, AuxOutputs]:
        return self.core(tokens, n_loops, states=states)

    def intermediate_modules(self, n_loops: int | None = None) -> list[str]:
        """The core, once per loop: the state h after each loop (ACT's output is their weighted mixture)."""
        loops = self.trained_loops if n_loops is None else int(n_loops)
        if loops < self.core.min_loops:
            raise ValueError(f"n_loops={loops} is below the configured min_loops={self.core.min_loops}")
        return ["core"] * loops

    def block_groups(self) -> list[tuple[str, tuple[int, ...] | None]]:
        return [(r"^core\.", None)]

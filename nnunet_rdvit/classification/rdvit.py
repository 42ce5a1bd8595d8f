"""RD-ViT classifier: the segmentation model's recurrent core (LTI injection, ACT, depth-wise LoRA,
optional MoE) under a CLS-token or average-pooled head; the core itself is documented in docs/architecture.md."""

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
    early).

    Args:
        num_loops: T, the loops the core is built and trained with.
        ffn: the shared block's feed-forward, "swiglu" or "mlp".
        lora_rank, act, act_threshold, halting_bias_init, min_loops, lti, sparse_act, halting_prior: as for
            :class:`RecurrentCore`.
        moe_experts, moe_top_k, moe_shared_expert, moe_bias_update_rate: as for the segmentation
            :class:`~nnunet_rdvit.networks.RDViT`.
        kwargs: the shared arguments of :class:`TokenClassifier` (``grad_checkpointing`` checkpoints each loop).
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
        sparse_act: bool | None = None,
        halting_prior: float | None = None,
        moe_experts: int = 0,
        moe_top_k: int = 2,
        moe_shared_expert: bool = False,
        moe_bias_update_rate: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(ffn=ffn, **kwargs)
        self.num_loops = num_loops
        feedforward = make_feedforward(ffn, self.embed_dim, self.mlp_ratio, moe_experts=moe_experts,
                                       moe_top_k=moe_top_k, moe_shared_expert=moe_shared_expert,
                                       moe_bias_update_rate=moe_bias_update_rate)
        self.core = RecurrentCore(
            self.new_block(feedforward), self.embed_dim, num_loops=num_loops, lora_rank=lora_rank, act=act,
            act_threshold=act_threshold, halting_bias_init=halting_bias_init, min_loops=min_loops, lti=lti,
            norm=self.norm_kind, grad_checkpointing=self.grad_checkpointing, sparse_act=sparse_act,
            halting_prior=halting_prior,
        )
        self.init_weights()
        self.core.reset_adaptive_parameters()  # halting bias and zero LoRA `up`, overwritten by init_weights

    def no_weight_decay(self) -> set[str]:
        """The per-loop LoRA scales start at 1: decaying them would shrink every loop's adaptation."""
        return super().no_weight_decay() | ({"core.lora.scales"} if self.core.lora is not None else set())

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint each loop of the core (the ``grad_checkpointing`` constructor argument)."""
        super().set_grad_checkpointing(enable)
        self.core.grad_checkpointing = enable

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, states: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, AuxOutputs]:
        return self.core(tokens, n_loops, states=states)

    def intermediate_modules(self, n_loops: int | None = None) -> list[str]:
        """The core, once per loop: the state h after each loop (ACT's output is their weighted mixture)."""
        loops = self.num_loops if n_loops is None else int(n_loops)
        if loops < self.core.min_loops:
            raise ValueError(f"n_loops={loops} is below the configured min_loops={self.core.min_loops}")
        return ["core"] * loops

    def block_groups(self) -> list[tuple[str, tuple[int, ...] | None]]:
        return [(r"^core\.", None)]

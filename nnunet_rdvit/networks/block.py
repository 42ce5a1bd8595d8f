"""Pre-norm transformer block shared by the ViT baseline and the recurrent core."""

from __future__ import annotations

import torch
from torch import nn

from nnunet_rdvit.networks.attention import Attention
from nnunet_rdvit.networks.feedforward import Mlp, SwiGLU, swiglu_hidden_dim
from nnunet_rdvit.networks.moe import MoEFeedForward, RoutingStats

NORM_LAYERS = {"layernorm": nn.LayerNorm, "rmsnorm": nn.RMSNorm}


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind not in NORM_LAYERS:
        raise ValueError(f"unknown norm {kind!r}; choose one of {sorted(NORM_LAYERS)}")
    return NORM_LAYERS[kind](dim)


def make_feedforward(
    kind: str, dim: int, mlp_ratio: float, *, moe_experts: int = 0, moe_top_k: int = 2,
    moe_shared_expert: bool = False, moe_bias_update_rate: float = 0.0,
) -> nn.Module:
    """``kind`` is 'mlp' or 'swiglu'; ``moe_experts`` > 0 turns the FFN into an MoE of SwiGLU experts
    (see :class:`MoEFeedForward` for the ``moe_*`` options)."""
    if moe_experts > 0:
        return MoEFeedForward(dim, swiglu_hidden_dim(dim, mlp_ratio), num_experts=moe_experts, top_k=moe_top_k,
                              shared_expert=moe_shared_expert, bias_update_rate=moe_bias_update_rate)
    if kind == "mlp":
        return Mlp(dim, int(dim * mlp_ratio))
    if kind == "swiglu":
        return SwiGLU(dim, swiglu_hidden_dim(dim, mlp_ratio))
    raise ValueError(f"unknown feed-forward {kind!r}; choose 'mlp' or 'swiglu'")


def active_token_index(active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rows of the active tokens in ``x.flatten(0, 1)``, per sample padded to the batch's largest count.

    Returns ``rows`` (B·M,) — for each sample its active tokens in token order, then padding — and
    ``valid`` (B·M,), True at the rows of active tokens, so that the valid rows follow ``x[active]``
    order; ``valid`` is None when nothing is padded (batch 1, as in nnU-Net's predictor). Padding,
    rather than a loop over samples, keeps the attention one batched kernel call.
    """
    batch, n_tokens = active.shape
    counts = active.sum(dim=1)
    width = int(counts.max())
    index = torch.argsort(~active, dim=1, stable=True)[:, :width]
    rows = (index + n_tokens * torch.arange(batch, device=active.device).unsqueeze(1)).flatten()
    if batch == 1:
        return rows, None
    return rows, (torch.arange(width, device=active.device) < counts.unsqueeze(1)).flatten()


class TransformerBlock(nn.Module):
    """x ← x + Attn(Norm(x)); x ← x + FFN(Norm(x)), with FFN an MLP, SwiGLU or MoE.

    Args:
        dim: token width D.
        num_heads: attention heads.
        feedforward: the FFN module (:func:`make_feedforward` builds one).
        norm: "layernorm" or "rmsnorm".
    """

    def __init__(self, dim: int, num_heads: int, feedforward: nn.Module, norm: str = "layernorm"):
        super().__init__()
        self.norm1 = make_norm(norm, dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = make_norm(norm, dim)
        self.ffn = feedforward

    @property
    def is_moe(self) -> bool:
        return isinstance(self.ffn, MoEFeedForward)

    def forward(
        self, x: torch.Tensor, active: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, RoutingStats | None]:
        """``x``: (B, N, D). Without ``active`` every token is updated and (B, N, D) is returned.

        With a boolean ``active`` mask (B, N), only the active tokens are queried and fed forward, and
        they alone are returned, as (M, D) in ``x[active]`` order; every token still serves as a key
        and value. This is what makes halted ACT tokens cost nothing but their keys and values. A mask
        that is all True takes the dense path (nothing to gather) and returns (B·N, D), the same order.
        """
        normed = self.norm1(x)
        if active is None or bool(active.all()):
            tokens = (x + self.attn(normed)).flatten(0, 1)
        else:
            rows, valid = active_token_index(active)
            queries = normed.flatten(0, 1)[rows].view(x.shape[0], -1, x.shape[-1])
            tokens = x.flatten(0, 1)[rows] + self.attn(queries, normed).flatten(0, 1)
            tokens = tokens if valid is None else tokens[valid]
        update, routing = self._feedforward(self.norm2(tokens))
        tokens = tokens + update
        return (tokens if active is not None else tokens.view_as(x)), routing

    def _feedforward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, RoutingStats | None]:
        if self.is_moe:
            return self.ffn(tokens)
        return self.ffn(tokens), None

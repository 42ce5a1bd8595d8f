"""Mixture-of-Experts feed-forward: top-k softmax router, SwiGLU experts, one-pass dispatch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from nnunet_rdvit.networks.feedforward import SwiGLU


@dataclass
class RoutingStats:
    """What one MoE call reports for losses and introspection."""

    balance_loss: torch.Tensor  # E · Σ f_i P_i; 1 at perfect balance, E when collapsed onto one expert
    z_loss: torch.Tensor  # mean(logsumexp(router logits)²), keeps router logits small
    expert_index: torch.Tensor  # (M, k) experts chosen per token
    expert_counts: torch.Tensor  # (E,) routed slots per expert (no gradient)


class MoEFeedForward(nn.Module):
    """E SwiGLU experts behind a top-k router, with an optional always-on shared expert.

    Expert weights live in two stacked parameters (E × D × 2H and E × H × D) rather than E modules:
    every expert's weights are touched by every forward pass, so nnU-Net's DistributedDataParallel
    (which does not set ``find_unused_parameters``) keeps working when an expert gets no token.

    Aux-loss-free balancing (DeepSeek-V3): a router bias that is used only to *select* experts is
    nudged after each optimizer step towards the under-loaded experts (:meth:`update_selection_bias`).

    Args:
        dim: token width D.
        hidden_dim: each expert's SwiGLU hidden width H.
        num_experts: E.
        top_k: experts each token is routed to.
        shared_expert: add an always-on SwiGLU expert beside the routed ones.
        bias_update_rate: step γ of the selection-bias update (0: no aux-loss-free balancing).
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        *,
        num_experts: int = 8,
        top_k: int = 2,
        shared_expert: bool = False,
        bias_update_rate: float = 0.0,
    ):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"MoE top_k must be between 1 and num_experts={num_experts}, got {top_k}")
        self.num_experts = num_experts
        self.top_k = top_k
        self.bias_update_rate = bias_update_rate
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.w_in = nn.Parameter(torch.empty(num_experts, dim, 2 * hidden_dim))
        self.w_out = nn.Parameter(torch.empty(num_experts, hidden_dim, dim))
        for weight in (self.w_in, self.w_out):
            nn.init.trunc_normal_(weight, std=0.02)
        self.shared = SwiGLU(dim, hidden_dim) if shared_expert else None
        self.register_buffer("selection_bias", torch.zeros(num_experts))
        self.register_buffer("pending_counts", torch.zeros(num_experts), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, RoutingStats]:
        """``x``: (M, D) tokens. Returns the mixed expert outputs (M, D) and the routing statistics."""
        logits = self.router(x).float()  # routing in fp32 whatever the autocast dtype
        probs = logits.softmax(dim=-1)
        expert_index = torch.topk(logits + self.selection_bias, self.top_k, dim=-1).indices
        gates = probs.gather(-1, expert_index)
        gates = gates / gates.sum(dim=-1, keepdim=True)

        out = self._dispatch(x, expert_index, gates.to(x.dtype))
        if self.shared is not None:
            out = out + self.shared(x)

        counts = torch.bincount(expert_index.flatten(), minlength=self.num_experts).to(probs.dtype)
        load = counts / counts.sum().clamp_min(1.0)
        balance = self.num_experts * (load * probs.mean(dim=0)).sum()
        z_loss = torch.logsumexp(logits, dim=-1).pow(2).mean()
        return out, RoutingStats(balance, z_loss, expert_index, counts)

    def _dispatch(self, x: torch.Tensor, expert_index: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Sort the (token, slot) pairs by expert once, run each expert on its contiguous segment."""
        flat_expert = expert_index.flatten()
        order = torch.argsort(flat_expert, stable=True)
        token_of_slot = order // self.top_k
        gate_of_slot = gates.flatten()[order].unsqueeze(-1)
        routed = x[token_of_slot]
        out = torch.zeros_like(x)
        segment_sizes = torch.bincount(flat_expert, minlength=self.num_experts).tolist()
        start = 0
        for expert, size in enumerate(segment_sizes):
            if size == 0:
                continue
            segment = slice(start, start + size)
            gate, up = (routed[segment] @ self.w_in[expert]).chunk(2, dim=-1)
            expert_out = (F.silu(gate) * up) @ self.w_out[expert]
            out.index_add_(0, token_of_slot[segment], expert_out * gate_of_slot[segment])
            start += size
        return out

    @torch.no_grad()
    def record_counts(self, counts: torch.Tensor) -> None:
        """Accumulate routed-slot counts of a training step for the next bias update."""
        if self.bias_update_rate > 0:
            self.pending_counts += counts.to(self.pending_counts)

    @torch.no_grad()
    def update_selection_bias(self) -> None:
        """bias_i += γ · sign(mean_load − load_i); all-reduced first so every DDP rank agrees."""
        if self.bias_update_rate <= 0:
            return
        counts = self.pending_counts.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
        if counts.sum() > 0:
            load = counts / counts.sum()
            self.selection_bias += self.bias_update_rate * torch.sign(load.mean() - load)
        self.pending_counts.zero_()


def moe_layers(module: nn.Module) -> list[MoEFeedForward]:
    """Every MoE feed-forward inside ``module``: what trainers update the selection bias of and log the load of."""
    return [m for m in module.modules() if isinstance(m, MoEFeedForward)]

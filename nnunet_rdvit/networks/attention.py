"""Non-causal multi-head self-attention on PyTorch's fused SDPA kernel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention whose queries may come from a subset of the tokens.

    Queries and keys/values have separate projections so that halted ACT tokens can serve as
    keys and values without being queried (the token-sparse execution of the recurrent core).

    Args:
        dim: token width D; must be divisible by ``num_heads``.
        num_heads: attention heads.
        qkv_bias: biases on the query and key/value projections.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by the number of heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, Nq, D) gives the queries; ``context`` (B, Nk, D), default ``x``, the keys and values."""
        context = x if context is None else context
        batch, n_queries, dim = x.shape
        q = self.q(x).view(batch, n_queries, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).view(batch, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, n_queries, dim))

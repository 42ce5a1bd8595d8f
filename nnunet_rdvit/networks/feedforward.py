"""Token-wise feed-forward networks: GELU MLP (ViT) and SwiGLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """The classic ViT MLP: Linear → GELU → Linear.

    Args:
        dim: token width D (input and output).
        hidden_dim: width of the hidden layer.
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    """Gated feed-forward (Shazeer 2020); at hidden = 2/3 · 4D it costs what a 4D GELU MLP costs.

    Args:
        dim: token width D (input and output).
        hidden_dim: width of the gated hidden layer (:func:`swiglu_hidden_dim` matches an MLP's cost).
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden_dim)
        self.down = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def swiglu_hidden_dim(dim: int, mlp_ratio: float) -> int:
    """Hidden width of a SwiGLU with the parameter count of a GELU MLP of ratio ``mlp_ratio``."""
    return int(round(2 * mlp_ratio * dim / 3))

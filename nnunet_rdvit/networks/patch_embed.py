"""Token patch embedding with a learned absolute position embedding, for 2D and 3D inputs."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op
from torch import nn


def check_token_size(patch_size: Sequence[int], token_size: Sequence[int]) -> None:
    """Raise a ValueError naming the offending axis unless ``token_size`` tiles ``patch_size`` exactly."""
    if len(patch_size) != len(token_size):
        raise ValueError(
            f"token patch {tuple(token_size)} has {len(token_size)} axes but the input patch "
            f"{tuple(patch_size)} has {len(patch_size)}; give one token size per spatial axis"
        )
    if len(patch_size) not in (2, 3):
        raise ValueError(f"only 2D and 3D inputs are supported, got a {len(patch_size)}D patch {tuple(patch_size)}")
    for axis, (p, t) in enumerate(zip(patch_size, token_size)):
        if t < 1 or p % t:
            raise ValueError(
                f"token patch {tuple(token_size)} must divide the input patch {tuple(patch_size)} on every axis, "
                f"but axis {axis} has {p} % {t} = {p % t if t >= 1 else 'n/a'}; choose a token size that divides "
                f"{p} or a patch size that is a multiple of {t}"
            )


def round_up_to_multiple(patch_size: Sequence[int], token_size: Sequence[int]) -> list[int]:
    """Smallest patch size ≥ ``patch_size`` that ``token_size`` tiles exactly (per axis)."""
    return [int(math.ceil(p / t) * t) for p, t in zip(patch_size, token_size)]


class PatchEmbed(nn.Module):
    """Cuts the image into non-overlapping token patches (conv with kernel = stride = token size).

    The position embedding is learned for the training grid; an input with another grid (e.g. a
    benchmark with more tokens) gets it resized by interpolation, as timm does for ViTs.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: Sequence[int], token_size: Sequence[int]):
        super().__init__()
        check_token_size(patch_size, token_size)
        self.token_size = tuple(int(t) for t in token_size)
        self.grid_size = tuple(p // t for p, t in zip(patch_size, token_size))
        conv = convert_dim_to_conv_op(len(token_size))
        self.proj = conv(in_channels, embed_dim, kernel_size=self.token_size, stride=self.token_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, math.prod(self.grid_size), embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Returns tokens (B, N, D) and the token grid shape."""
        check_token_size(tuple(x.shape[2:]), self.token_size)
        x = self.proj(x)
        grid = tuple(x.shape[2:])
        tokens = x.flatten(2).transpose(1, 2)
        return tokens + self._position_embedding(grid), grid

    def _position_embedding(self, grid: tuple[int, ...]) -> torch.Tensor:
        if grid == self.grid_size:
            return self.pos_embed
        pos = self.pos_embed.transpose(1, 2).reshape(1, -1, *self.grid_size)
        mode = "bilinear" if len(grid) == 2 else "trilinear"
        pos = F.interpolate(pos, size=grid, mode=mode, align_corners=False)
        return pos.flatten(2).transpose(1, 2)

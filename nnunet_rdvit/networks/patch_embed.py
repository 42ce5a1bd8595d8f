"""Token patch embedding with a learned absolute position embedding, for 2D and 3D inputs."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.fx
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


def checked_image(x: torch.Tensor, token_size: Sequence[int]) -> torch.Tensor:
    """``x`` unchanged once :func:`check_token_size` accepts its spatial shape."""
    check_token_size(tuple(x.shape[2:]), token_size)
    return x


def position_embedding(pos_embed: torch.Tensor, trained_grid: Sequence[int], features: torch.Tensor) -> torch.Tensor:
    """``pos_embed`` (1, N, D) for the grid of ``features`` (B, D, *grid): as learned, or interpolated."""
    grid = tuple(features.shape[2:])
    if grid == tuple(trained_grid):
        return pos_embed
    pos = pos_embed.transpose(1, 2).reshape(1, -1, *trained_grid)
    mode = "bilinear" if len(grid) == 2 else "trilinear"
    pos = F.interpolate(pos, size=grid, mode=mode, align_corners=False)
    return pos.flatten(2).transpose(1, 2)


# Shape-dependent Python: leaves for torch.fx, so that a symbolic trace (torchvision's or timm's feature
# extraction) records one call instead of failing on the shape proxies.
torch.fx.wrap("checked_image")
torch.fx.wrap("position_embedding")


class PatchEmbed(nn.Module):
    """Cuts the image into non-overlapping token patches (conv with kernel = stride = token size).

    The position embedding is learned for the training grid; an input with another grid (e.g. a
    benchmark with more tokens) gets it resized by interpolation, as timm does for ViTs.

    Args:
        in_channels: channels of the image (or of the feature map a hybrid encoder hands over).
        embed_dim: token width D.
        patch_size: the input size the position embedding is learned for.
        token_size: input voxels per token, per axis; must divide ``patch_size``.
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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
        """Returns tokens (B, N, D) and the token grid shape."""
        x = self.proj(checked_image(x, self.token_size))
        tokens = x.flatten(2).transpose(1, 2)
        return tokens + position_embedding(self.pos_embed, self.grid_size, x), x.shape[2:]

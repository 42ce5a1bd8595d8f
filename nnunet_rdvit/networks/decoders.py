"""Decoders from the token grid back to full resolution; the ViT baseline and RD-ViT share them."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op
from torch import nn

from nnunet_rdvit.networks.conv_encoder import ConvNormAct, upsampling_schedule


def tokens_to_grid(tokens: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """(B, N, D) tokens → (B, D, *grid) feature map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


class LightHead(nn.Module):
    """The paper-like head: 1×1 conv to class logits on the token grid, then interpolation by the token size.

    Args:
        embed_dim: token channels.
        num_classes: output channels.
        token_size: the network's token size, the interpolation factor per axis.
    """

    def __init__(self, embed_dim: int, num_classes: int, token_size: Sequence[int]):
        super().__init__()
        self.token_size = tuple(token_size)
        self.proj = convert_dim_to_conv_op(len(token_size))(embed_dim, num_classes, kernel_size=1)

    def forward(self, tokens: torch.Tensor, grid: Sequence[int], skips: Sequence[torch.Tensor]) -> torch.Tensor:
        logits = self.proj(tokens_to_grid(tokens, grid))
        mode = "bilinear" if len(grid) == 2 else "trilinear"
        size = [g * t for g, t in zip(grid, self.token_size)]
        return F.interpolate(logits, size=size, mode=mode, align_corners=False)


class ProgressiveDecoder(nn.Module):
    """Transposed-conv stages (×2 per stage, per axis as the token size allows), each followed by a conv.

    Where the encoder has a feature map at a stage's resolution (see :class:`ConvEncoder`), it is
    concatenated before that stage's conv — a U-Net-style skip; a stem-only encoder gives one skip at
    full resolution, the finest detail for sharper boundaries.

    Args:
        embed_dim: token channels.
        num_classes: output channels.
        token_size: the network's token size; it sets the stages (see :func:`upsampling_schedule`).
        skip_channels: channels of the encoder's feature maps, full resolution first (empty: no skips);
            a map at the token grid's own resolution is not used (the tokens replace it).
        min_channels: the narrowest stage; stages halve the channels down to it.
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        token_size: Sequence[int],
        skip_channels: Sequence[int] = (),
        min_channels: int = 16,
    ):
        super().__init__()
        ndim = len(token_size)
        transposed_op = nn.ConvTranspose2d if ndim == 2 else nn.ConvTranspose3d
        schedule = upsampling_schedule(token_size)
        if len(skip_channels) > len(schedule) + 1:  # level len(schedule) is the token grid itself
            raise ValueError(f"{len(skip_channels)} skip levels but token size {tuple(token_size)} has only "
                             f"{len(schedule)} upsampling stages")
        self.skip_levels = len(skip_channels)
        self.up = nn.ModuleList()
        self.convs = nn.ModuleList()
        channels = embed_dim
        for index, factors in enumerate(schedule):
            out_channels = max(min_channels, channels // 2)
            level = len(schedule) - 1 - index  # 0 = full resolution
            skip = skip_channels[level] if level < len(skip_channels) else 0
            self.up.append(transposed_op(channels, out_channels, kernel_size=factors, stride=factors))
            self.convs.append(ConvNormAct(ndim, out_channels + skip, out_channels))
            channels = out_channels
        self.seg = convert_dim_to_conv_op(ndim)(channels, num_classes, kernel_size=1)

    def forward(self, tokens: torch.Tensor, grid: Sequence[int], skips: Sequence[torch.Tensor]) -> torch.Tensor:
        x = tokens_to_grid(tokens, grid)
        for index, (up, conv) in enumerate(zip(self.up, self.convs)):
            x = up(x)
            level = len(self.up) - 1 - index
            if level < self.skip_levels:
                x = torch.cat([x, skips[level]], dim=1)
            x = conv(x)
        return self.seg(x)


DECODERS = ("light", "progressive")


def build_decoder(kind: str, embed_dim: int, num_classes: int, token_size: Sequence[int],
                  skip_channels: Sequence[int]) -> nn.Module:
    """``skip_channels``: the encoder's feature maps, full resolution first (the light head uses none)."""
    if kind == "light":
        return LightHead(embed_dim, num_classes, token_size)
    if kind == "progressive":
        return ProgressiveDecoder(embed_dim, num_classes, token_size, skip_channels)
    raise ValueError(f"unknown decoder {kind!r}; choose one of {DECODERS}")

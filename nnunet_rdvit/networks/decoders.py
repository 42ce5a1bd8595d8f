"""Decoders from the token grid back to full resolution; the ViT baseline and RD-ViT share them."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op, get_matching_instancenorm
from torch import nn


def tokens_to_grid(tokens: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """(B, N, D) tokens → (B, D, *grid) feature map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


class LightHead(nn.Module):
    """The paper-like head: 1×1 conv to class logits on the token grid, then interpolation by the token size."""

    def __init__(self, embed_dim: int, num_classes: int, token_size: Sequence[int]):
        super().__init__()
        self.token_size = tuple(token_size)
        self.proj = convert_dim_to_conv_op(len(token_size))(embed_dim, num_classes, kernel_size=1)

    def forward(self, tokens: torch.Tensor, grid: Sequence[int], image: torch.Tensor) -> torch.Tensor:
        logits = self.proj(tokens_to_grid(tokens, grid))
        mode = "bilinear" if len(grid) == 2 else "trilinear"
        return F.interpolate(logits, size=image.shape[2:], mode=mode, align_corners=False)


def upsampling_schedule(token_size: Sequence[int]) -> list[tuple[int, ...]]:
    """Per-stage, per-axis upsampling factors: ×2 while an axis has a factor 2 left, then any odd rest.

    (2, 16, 16) → [(2,2,2), (1,2,2), (1,2,2), (1,2,2)]: anisotropic tokens get anisotropic stages.
    """
    remaining = list(token_size)
    stages = []
    while any(r > 1 for r in remaining):
        factors = tuple(2 if r % 2 == 0 else r for r in remaining)
        remaining = [r // f for r, f in zip(remaining, factors)]
        stages.append(factors)
    return stages


class _ConvNormAct(nn.Sequential):
    def __init__(self, conv_op: type[nn.Module], in_channels: int, out_channels: int):
        super().__init__(
            conv_op(in_channels, out_channels, kernel_size=3, padding=1),
            get_matching_instancenorm(conv_op)(out_channels, affine=True),
            nn.LeakyReLU(inplace=True),
        )


class ProgressiveDecoder(nn.Module):
    """Transposed-conv stages (×2 per stage, per axis as the token size allows), each followed by a conv.

    An optional shallow conv stem on the input image is concatenated at full resolution, giving the
    final convolutions sub-token detail for sharper boundaries.
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        token_size: Sequence[int],
        in_channels: int,
        min_channels: int = 16,
        stem_channels: int = 8,
    ):
        super().__init__()
        ndim = len(token_size)
        conv_op = convert_dim_to_conv_op(ndim)
        transposed_op = nn.ConvTranspose2d if ndim == 2 else nn.ConvTranspose3d
        self.stages = nn.ModuleList()
        channels = embed_dim
        schedule = upsampling_schedule(token_size)
        for index, factors in enumerate(schedule):
            out_channels = max(min_channels, channels // 2)
            stage = [transposed_op(channels, out_channels, kernel_size=factors, stride=factors)]
            if index < len(schedule) - 1:  # at full resolution the fusion conv below does this job
                stage.append(_ConvNormAct(conv_op, out_channels, out_channels))
            self.stages.append(nn.Sequential(*stage))
            channels = out_channels
        self.stem = _ConvNormAct(conv_op, in_channels, stem_channels) if stem_channels > 0 else None
        fused = channels + (stem_channels if self.stem is not None else 0)
        self.fuse = _ConvNormAct(conv_op, fused, channels)
        self.seg = conv_op(channels, num_classes, kernel_size=1)

    def forward(self, tokens: torch.Tensor, grid: Sequence[int], image: torch.Tensor) -> torch.Tensor:
        x = tokens_to_grid(tokens, grid)
        for stage in self.stages:
            x = stage(x)
        if self.stem is not None:
            x = torch.cat([x, self.stem(image)], dim=1)
        return self.seg(self.fuse(x))


DECODERS = ("light", "progressive")


def build_decoder(kind: str, embed_dim: int, num_classes: int, token_size: Sequence[int], in_channels: int) -> nn.Module:
    if kind == "light":
        return LightHead(embed_dim, num_classes, token_size)
    if kind == "progressive":
        return ProgressiveDecoder(embed_dim, num_classes, token_size, in_channels)
    raise ValueError(f"unknown decoder {kind!r}; choose one of {DECODERS}")

"""Parameters and FLOPs per image, counted by torch's own FLOP counter on a real forward pass.

FLOPs are torch's convention, 2 per multiply-add (the convention of the Edge-RecViT paper's table:
DeiT-B ≈ 35 GFLOPs). Matrix products, convolutions and attention are counted (attention on every torch:
see :mod:`nnunet_rdvit.flops`); norms, activations and softmax are not. Models with data-dependent depth
(ACT, Edge-RecViT's ranker) cost what the given images make them execute, so count them on real data.
"""

from __future__ import annotations

import torch
from torch import nn

from nnunet_rdvit.flops import count_flops


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def flops_per_image(model: nn.Module, images: torch.Tensor, n_loops: int | None = None) -> float:
    was_training = model.training
    model.eval()
    flops = count_flops(lambda: model.forward_head(model.forward_features(images, n_loops=n_loops)))
    model.train(was_training)
    return flops / images.shape[0]

"""The measured calls: one training step and one patch inference, on CPU or CUDA (bf16 autocast there).

Imports only torch, so that the peak-memory worker (a fresh process per model) starts light.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

AUX_WEIGHT = 0.01  # ponder / balance / z-loss weight; any non-zero weight costs the same


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, as nnU-Net trains and predicts there; fp32 on the CPU, as nnU-Net does."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_image(batch: int, patch: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixed random input (z-scored intensities); sample 0 is the same for every batch size."""
    return torch.randn(batch, 1, *patch, generator=torch.Generator().manual_seed(0)).to(device)


def make_optimizer(network: nn.Module) -> torch.optim.Optimizer:
    """The optimiser each model trains with: nnU-Net's SGD for the U-Net, AdamW for the transformers."""
    if hasattr(network, "last_aux"):
        return torch.optim.AdamW(network.parameters(), lr=3e-4, weight_decay=5e-2, betas=(0.9, 0.98))
    return torch.optim.SGD(network.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)


def training_step(network: nn.Module, batch: int, patch: tuple[int, ...], num_classes: int,
                  device: torch.device) -> Callable[[], None]:
    """A closure for one forward + cross-entropy (+ auxiliary losses) + backward + optimiser step."""
    network.to(device)
    optimizer = make_optimizer(network)
    image = bench_image(batch, patch, device)
    target = torch.randint(0, num_classes, (batch, *patch), generator=torch.Generator().manual_seed(1)).to(device)

    def step() -> None:
        network.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss = F.cross_entropy(network(image), target)
            aux = getattr(network, "last_aux", None)
            for term in (aux.ponder_loss, aux.balance_loss, aux.z_loss) if aux is not None else ():
                if term is not None:
                    loss = loss + AUX_WEIGHT * term
        loss.backward()
        if isinstance(optimizer, torch.optim.AdamW):
            nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()

    return step


def patch_inference(network: nn.Module, patch: tuple[int, ...], device: torch.device) -> Callable[[], None]:
    """A closure for one sliding-window tile's forward pass: batch 1, eval mode, inference mode."""
    network.to(device)
    image = bench_image(1, patch, device)

    def infer() -> None:
        network.eval()
        with torch.inference_mode(), autocast(device):
            network(image)

    return infer

"""AdamW with built-in gradient clipping, and warm-up + polynomial-decay schedules over epochs or a time budget."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler


class ClippedAdamW(torch.optim.AdamW):
    """AdamW that clips the global gradient norm before every step.

    nnU-Net's ``train_step`` clips at 12 (right for SGD on U-Nets); transformers want 1. Clipping inside
    ``step`` — after nnU-Net has unscaled AMP gradients and DDP has reduced them — gives exactly that
    without copying nnU-Net's training step.
    """

    def __init__(self, params: Iterable, max_grad_norm: float = 1.0, **kwargs):
        super().__init__(params, **kwargs)
        self.max_grad_norm = max_grad_norm

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        return super().step(closure)


def decay_parameter_groups(network: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and kernels only (timm's rule); none on biases, norms, gains, the
    position embedding or the per-loop LoRA scales, which decay would pull towards switching the adapter off."""
    decay, no_decay = [], []
    for name, param in network.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or name.endswith(("pos_embed", "lora.scales")) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class WarmupPolyLR(LRScheduler):
    """Linear warm-up over ``warmup_epochs``, then nnU-Net's polynomial decay (exponent 0.9) to zero.

    Like nnU-Net's own schedulers, ``step(epoch)`` sets the rate of that epoch directly.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, initial_lr: float, num_epochs: int, warmup_epochs: int,
                 exponent: float = 0.9):
        self.initial_lr = initial_lr
        self.num_epochs = num_epochs
        self.warmup_epochs = max(0, min(warmup_epochs, num_epochs - 1))
        self.exponent = exponent
        self.counter = 0
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.initial_lr * (epoch + 1) / (self.warmup_epochs + 1)
        progress = (epoch - self.warmup_epochs) / max(1, self.num_epochs - self.warmup_epochs)
        return self.initial_lr * poly_decay(progress, self.exponent)

    def step(self, epoch: int | None = None) -> None:
        if epoch is None:
            epoch = self.counter
            self.counter += 1
        _set_lr(self, self.lr_at(epoch))


class BudgetLR(LRScheduler):
    """Warm-up + polynomial decay over the fraction of a time budget spent, so the rate reaches 0 at the budget.

    ``progress()`` returns the fraction of the budget spent (training seconds / budget seconds). nnU-Net calls
    ``step(epoch)`` at every epoch start; the epoch number is ignored and the rate is set from the progress at
    that moment. The warm-up (the first ``warmup_fraction`` of the budget; 0 for nnU-Net's U-Net, whose
    PolyLRScheduler has none) rises linearly from ``warmup_start_factor`` × the initial rate: stepped per epoch,
    a ramp from 0 would leave the first epoch without learning.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, initial_lr: float, progress: Callable[[], float],
                 warmup_fraction: float = 0.0, exponent: float = 0.9, warmup_start_factor: float = 0.1):
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        self.initial_lr = initial_lr
        self.progress = progress
        self.warmup_fraction = warmup_fraction
        self.exponent = exponent
        self.warmup_start_factor = warmup_start_factor
        super().__init__(optimizer)

    def lr_at(self, fraction: float) -> float:
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction < self.warmup_fraction:
            ramp = fraction / self.warmup_fraction
            return self.initial_lr * (self.warmup_start_factor + (1 - self.warmup_start_factor) * ramp)
        return self.initial_lr * poly_decay((fraction - self.warmup_fraction) / (1 - self.warmup_fraction),
                                            self.exponent)

    def step(self, epoch: int | None = None) -> None:
        _set_lr(self, self.lr_at(self.progress()))


def poly_decay(progress: float, exponent: float) -> float:
    """nnU-Net's polynomial decay factor, (1 - progress) ** exponent, held at 0 after the end."""
    return (1 - min(progress, 1.0)) ** exponent


def _set_lr(scheduler: LRScheduler, lr: float) -> None:
    for group in scheduler.optimizer.param_groups:
        group["lr"] = lr
    scheduler._last_lr = [lr] * len(scheduler.optimizer.param_groups)

"""The training loop: AdamW, linear warm-up + cosine decay per step, AMP on CUDA, DDP under torchrun,
atomic checkpoints every epoch and step-identical resume.

:func:`fit` is generic over the model, the objective (classification or Raptor distillation) and the
datasets, so the ImageFolder commands, the tests and the digits benchmark all train through it.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm import tqdm

from nnunet_rdvit.atomic import write_json_atomic
from nnunet_rdvit.classification.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from nnunet_rdvit.classification.data import Augmentation, create_mixup, eval_loader, train_loader
from nnunet_rdvit.classification.distributed import DistributedContext
from nnunet_rdvit.classification.evaluate import evaluate
from nnunet_rdvit.classification.objective import LossWeights
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.networks.moe import MoEFeedForward

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class TrainSettings:
    """One run's recipe (DeiT's defaults). ``batch_size`` is per process; ``lr=None`` means DeiT's
    rule 5e-4 · global batch / 512."""

    epochs: int = 300
    batch_size: int = 128
    lr: float | None = None
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    warmup_epochs: int = 5
    label_smoothing: float = 0.1
    clip_grad: float | None = 1.0
    seed: int = 0
    workers: int = 4
    amp: str = "auto"  # auto (bf16 where supported, else fp16) | bf16 | fp16 | off; CUDA only
    eval_every: int = 1
    save_every: int = 0  # also keep epoch_NNNN.pt every this many epochs (0: only last.pt)
    progress: bool = True
    augmentation: Augmentation = field(default_factory=Augmentation)
    loss_weights: LossWeights = field(default_factory=LossWeights)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainSettings:
        """Inverse of ``dataclasses.asdict`` (how checkpoints store the settings)."""
        return cls(**{**values, "augmentation": Augmentation(**values["augmentation"]),
                      "loss_weights": LossWeights(**values["loss_weights"])})

    def learning_rate(self, world_size: int) -> float:
        return self.lr if self.lr is not None else 5e-4 * self.batch_size * world_size / 512


class WarmupCosine:
    """LR factor per step: linear warm-up over ``warmup`` steps, then cosine from 1 down to ``floor``."""

    def __init__(self, warmup: int, total: int, floor: float):
        self.warmup, self.total, self.floor = warmup, total, floor

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW without decay on biases, norms and the parameters the model names in ``no_weight_decay``."""
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 or name in skip else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA only; the CPU trains in fp32."""
    if setting not in ("auto", "bf16", "fp16", "off"):
        raise UserError(f"unknown AMP setting {setting!r}; choose auto, bf16, fp16 or off")
    if device.type != "cuda" or setting == "off":
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if setting == "bf16" else torch.float16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(
    model: nn.Module,
    objective: Objective,
    train_set: Dataset,
    val_set: Dataset | None,
    settings: TrainSettings,
    output: Path,
    meta: dict[str, Any],
    ctx: DistributedContext,
    resume: Path | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` and return the per-epoch history. ``meta`` (registry name, constructor arguments,
    class names, …) is stored in every checkpoint; ``resume`` continues from a checkpoint of this run."""
    seed_everything(settings.seed + ctx.rank)  # each rank augments differently; DDP syncs the weights
    return _Run(model, objective, train_set, val_set, settings, Path(output), meta, ctx).fit(resume)


class _Run:
    """The state of one training run: model, optimiser, schedule, scaler, loaders, history."""

    def __init__(self, model: nn.Module, objective: Objective, train_set: Dataset, val_set: Dataset | None,
                 settings: TrainSettings, output: Path, meta: dict[str, Any], ctx: DistributedContext):
        self.model, self.objective, self.settings, self.output, self.meta, self.ctx = (
            model.to(ctx.device), objective, settings, output, meta, ctx)
        self.loader = train_loader(train_set, settings.batch_size, ctx, settings.seed, settings.workers)
        self.val_loader = (eval_loader(val_set, settings.batch_size, ctx, settings.workers)
                           if val_set is not None else None)
        self.total_steps = settings.epochs * len(self.loader)
        self.optimizer = build_optimizer(model, settings.learning_rate(ctx.world_size), settings.weight_decay)
        floor = min(1.0, settings.min_lr / self.optimizer.param_groups[0]["lr"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, WarmupCosine(settings.warmup_epochs * len(self.loader), self.total_steps, floor))
        self.dtype = autocast_dtype(settings.amp, ctx.device)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.dtype == torch.float16)
        self.mixup = create_mixup(settings.augmentation, settings.label_smoothing, len(meta["class_names"]))
        self.moe_layers = [m for m in model.modules() if isinstance(m, MoEFeedForward)]
        self.history: list[dict[str, float]] = []

    def fit(self, resume: Path | None) -> list[dict[str, float]]:
        start_epoch = self._restore(resume) if resume is not None else 0
        # wrapped after restoring, so that every rank starts from the checkpoint's weights
        trained = DistributedDataParallel(self.model) if self.ctx.distributed else self.model
        for epoch in range(start_epoch, self.settings.epochs):
            self.loader.sampler.set_epoch(epoch)
            record = self._train_epoch(trained, epoch)
            done = epoch + 1
            if self.val_loader is not None and (done % self.settings.eval_every == 0 or done == self.settings.epochs):
                result = evaluate(self.model, self.val_loader, self.ctx, self.dtype)
                record.update(val_top1=result.top1, val_top5=result.top5, val_loss=result.loss)
            self.history.append(record)
            self._save(keep=bool(self.settings.save_every) and done % self.settings.save_every == 0)
            if self.ctx.is_main and self.settings.progress:
                print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()),
                      flush=True)
        return self.history

    def _train_epoch(self, trained: nn.Module, epoch: int) -> dict[str, float]:
        settings, ctx, loader = self.settings, self.ctx, self.loader
        trained.train()
        sums: dict[str, float] = defaultdict(float)
        started = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", leave=False,
                   disable=not (ctx.is_main and settings.progress))
        for step, (images, targets) in enumerate(bar):
            images = images.to(ctx.device, non_blocking=True)
            targets = targets.to(ctx.device, non_blocking=True)
            if self.mixup is not None:
                images, targets = self.mixup(images, targets)
            progress = (epoch * len(loader) + step) / self.total_steps
            with torch.autocast(ctx.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                loss, logs = self.objective(trained, images, targets, progress)
            if not torch.isfinite(loss):
                raise UserError(f"the training loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                                "lower the learning rate (--lr) or keep gradient clipping on")
            self._step(loss)
            sums["loss"] += loss.item()
            for name, value in logs.items():
                sums[name] += float(value)
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
        seconds = time.perf_counter() - started
        names = sorted(sums)
        means = ctx.all_reduce_sum(torch.tensor([sums[n] for n in names], dtype=torch.float64)) / (
            len(loader) * ctx.world_size)
        record: dict[str, float] = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"]}
        record.update({f"train_{n}": float(v) for n, v in zip(names, means)})
        record["train_images_per_second"] = len(loader) * loader.batch_size * ctx.world_size / seconds
        return record

    def _step(self, loss: torch.Tensor) -> None:
        """Backward, (unscale and) clip, optimiser and schedule step, MoE selection-bias update."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.settings.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        for moe in self.moe_layers:
            moe.update_selection_bias()

    def _restore(self, path: Path) -> int:
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = state["history"]
        if state["world_size"] == self.ctx.world_size:
            set_rng_state(state["rng"][self.ctx.rank])
        elif self.ctx.is_main:
            print(f"resuming with {self.ctx.world_size} processes instead of {state['world_size']}: the data order "
                  "follows the new sharding and augmentation randomness is not restored")
        return state["epoch"]

    def _save(self, keep: bool) -> None:
        """Rank 0 writes last.pt (and epoch_NNNN.pt when ``keep``) and history.json, with every rank's RNG."""
        rng = self.ctx.gather(rng_state())
        if self.ctx.is_main:
            epoch = int(self.history[-1]["epoch"])
            payload = {**self.meta, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                       "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                       "epoch": epoch, "history": self.history, "settings": asdict(self.settings), "rng": rng,
                       "world_size": self.ctx.world_size}
            save_checkpoint(self.output / "last.pt", payload)
            if keep:
                save_checkpoint(self.output / f"epoch_{epoch:04d}.pt", payload)
            write_json_atomic(self.output / "history.json", self.history)
        self.ctx.barrier()

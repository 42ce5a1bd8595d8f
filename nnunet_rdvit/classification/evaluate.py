"""Evaluation: top-1/top-5, loss, images per second, accuracy against inference steps, and the
histogram of per-token depths (Edge-RecViT's ranked depths, RD-ViT's ACT halting steps)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from nnunet_rdvit.classification.distributed import DistributedContext


@dataclass
class EvalResult:
    images: int
    top1: float  # %
    top5: float  # % (top-k with k = min(5, classes))
    loss: float
    forward_seconds: float  # time in the forward passes, slowest rank
    depth_counts: list[int] | None = None  # tokens per depth (index = layers/loops executed)

    @property
    def images_per_second(self) -> float:
        return self.images / self.forward_seconds if self.forward_seconds > 0 else float("nan")

    @property
    def mean_depth(self) -> float | None:
        if not self.depth_counts or not sum(self.depth_counts):
            return None
        return sum(d * c for d, c in enumerate(self.depth_counts)) / sum(self.depth_counts)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    ctx: DistributedContext,
    dtype: torch.dtype | None = None,
    n_loops: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """Accuracy of ``model`` (unwrapped, not DDP) over this rank's shard, summed over all ranks."""
    was_training = model.training
    model.eval()
    max_depth = (n_loops if n_loops is not None else getattr(model, "num_loops", None) or 0) + 3
    totals = torch.zeros(4, dtype=torch.float64)  # images, top-1 hits, top-5 hits, summed loss
    depth_counts = torch.zeros(max_depth, dtype=torch.float64)
    seconds = 0.0
    for images, labels in tqdm(loader, desc="evaluating", leave=False, disable=not (progress and ctx.is_main)):
        images, labels = images.to(ctx.device, non_blocking=True), labels.to(ctx.device, non_blocking=True)
        _synchronize(ctx.device)
        started = time.perf_counter()
        with torch.autocast(ctx.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model.forward_head(model.forward_features(images, n_loops=n_loops))
        _synchronize(ctx.device)
        seconds += time.perf_counter() - started
        aux = model.last_aux
        logits = logits.float()
        hits = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
        totals += torch.tensor([len(labels), hits[:, 0].sum().item(), hits.any(dim=1).sum().item(),
                                F.cross_entropy(logits, labels, reduction="sum").item()], dtype=torch.float64)
        if aux.halting_steps is not None:
            depth_counts += torch.bincount(aux.halting_steps.flatten().cpu(), minlength=max_depth)[:max_depth]
    model.train(was_training)
    totals = ctx.all_reduce_sum(totals)
    depth_counts = ctx.all_reduce_sum(depth_counts)
    if ctx.distributed:
        slowest = torch.tensor([seconds], device=ctx.device)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        seconds = float(slowest)
    images = max(1, int(totals[0]))
    return EvalResult(
        images=int(totals[0]), top1=100 * float(totals[1]) / images, top5=100 * float(totals[2]) / images,
        loss=float(totals[3]) / images, forward_seconds=seconds,
        depth_counts=[int(c) for c in depth_counts] if depth_counts.sum() > 0 else None,
    )

"""ImageFolder data (ImageNet layout ``<root>/train/<class>/…``, ``<root>/val/<class>/…``), timm's
augmentation, and the loaders of a (possibly distributed) run.

Training shards with a :class:`DistributedSampler` (also for one process) whose order depends only on
the seed and the epoch, so a resumed run sees the same batches. Evaluation shards without padding
(rank r takes samples r, r + world, …) so that summed counts are exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from nnunet_rdvit.classification.distributed import DistributedContext
from nnunet_rdvit.errors import UserError, first_sentence
from nnunet_rdvit.paths import kind_of


@dataclass
class Augmentation:
    """DeiT's recipe by default; ``mixup``/``cutmix`` are the Beta α of timm's :class:`Mixup` (0 = off)."""

    auto_augment: str | None = "rand-m9-mstd0.5-inc1"
    re_prob: float = 0.25
    hflip: float = 0.5
    color_jitter: float = 0.3
    min_scale: float = 0.08
    mixup: float = 0.0
    cutmix: float = 0.0


class UnreadableImage(UserError):
    """An image file of the dataset that cannot be decoded, named with the fix.

    Raised while loading, possibly in a DataLoader worker, which torch re-raises in the main process as the
    same class with the worker's whole traceback as its message; the constructor keeps only the original
    message (the traceback's last line), so the user still sees one line.
    """

    def __init__(self, message: str):
        marker = f"{type(self).__name__}: "
        super().__init__(message.strip().rsplit(marker, 1)[-1] if message.startswith("Caught ") else message)


def load_rgb(path: str):
    """torchvision's default image loader (PIL, converted to RGB), with undecodable files named."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as file:
            return Image.open(file).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:  # truncated, not an image, corrupt
        reason = ("not in an image format PIL recognises" if isinstance(error, UnidentifiedImageError) else
                  first_sentence(error))
        raise UnreadableImage(f"{path} is not a readable image ({reason}); replace or remove it") from None


def image_folder(root: Path, split: str, transform: Callable | None = None) -> Dataset:
    """``root/split`` as a torchvision ImageFolder, with the problems a user can fix named."""
    from torchvision.datasets import ImageFolder

    folder = Path(root) / split
    kind = kind_of(folder)
    if kind != "a folder":
        problem = "does not exist" if kind == "missing" else f"is {kind}, not a folder"
        raise UserError(f"dataset folder {folder} {problem}; expected the ImageNet layout "
                        f"{folder}/<class name>/<image files>")
    if not any(p.is_dir() for p in folder.iterdir()):
        raise UserError(f"{folder} has no class folders; put each class's images in {folder}/<class name>/")
    try:
        return ImageFolder(folder, transform=transform, loader=load_rgb)
    except FileNotFoundError as error:
        raise UserError(f"{folder}: {error}; every class folder needs at least one image "
                        "(.jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp)") from error


def check_same_classes(reference: list[str], other: list[str], what: str) -> None:
    """Class indices must mean the same thing in both sets (ImageFolder numbers the sorted folder names)."""
    if reference != other:
        missing, extra = sorted(set(reference) - set(other)), sorted(set(other) - set(reference))
        raise UserError(f"the classes of {what} do not match the training classes: missing {missing[:10]}, "
                        f"unexpected {extra[:10]} ({len(reference)} vs {len(other)} classes); use the same "
                        "class folders in train/ and val/")


def create_transforms(model: torch.nn.Module, augmentation: Augmentation | None) -> Callable:
    """timm's train transform (``augmentation`` given) or eval transform (resize + centre crop), sized
    and normalised from the model's data config."""
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({"input_size": model.input_size}, model=model)
    if augmentation is None:
        return create_transform(**config, is_training=False)
    config.pop("crop_pct", None)
    config.pop("crop_mode", None)
    try:
        return create_transform(
            **config, is_training=True, auto_augment=augmentation.auto_augment, re_prob=augmentation.re_prob,
            hflip=augmentation.hflip, color_jitter=augmentation.color_jitter, scale=(augmentation.min_scale, 1.0),
        )
    except (AssertionError, KeyError, ValueError) as error:  # timm asserts on a policy string it cannot parse
        raise UserError(f"--aa {augmentation.auto_augment!r} is not a timm auto-augment policy "
                        f"({first_sentence(error)}); use e.g. rand-m9-mstd0.5-inc1, augmix-m5-w3, original, or "
                        "none") from None


def create_mixup(augmentation: Augmentation, label_smoothing: float, num_classes: int) -> Callable | None:
    if augmentation.mixup <= 0 and augmentation.cutmix <= 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=augmentation.mixup, cutmix_alpha=augmentation.cutmix,
                 label_smoothing=label_smoothing, num_classes=num_classes)


def _seed_worker(worker_id: int) -> None:
    """Workers get torch seeds from the main process's RNG; give NumPy and ``random`` matching ones."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def train_loader(dataset: Dataset, batch_size: int, ctx: DistributedContext, seed: int,
                 workers: int) -> DataLoader:
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                        pin_memory=ctx.device.type == "cuda", worker_init_fn=_seed_worker)
    if len(loader) == 0:
        raise UserError(f"the training set ({len(dataset)} images over {ctx.world_size} process(es)) is smaller "
                        f"than one batch of {batch_size}; lower --batch-size")
    return loader


def eval_loader(dataset: Dataset, batch_size: int, ctx: DistributedContext, workers: int) -> DataLoader:
    shard = Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=ctx.device.type == "cuda", worker_init_fn=_seed_worker)

"""A real check of the classification side module on scikit-learn's bundled digits (no download).

1,797 real 8×8 handwritten digits, 10 classes, stratified 80/20 train/test split. Every model is
trained by the package's own training loop at an equal budget: same width (64), heads (4), token patch
(2×2 → 16 tokens + CLS), 6 layers' worth of depth (6 blocks, 6 steps, 6 loops, or head + 4 shared +
tail), epochs, batch, optimiser and schedule; no augmentation. A Raptor student
(k = 2 blocks) is then distilled from each seed's trained ViT for the same number of epochs.

    python benchmarks/classification_digits.py               # 3 seeds in parallel, ≈4 minutes on 2 idle cores
    python benchmarks/classification_digits.py --seeds 1 --epochs 10

Prints the accuracy / parameters / FLOPs / time table, then accuracy against inference steps for the
recurrent models (trained at 6 steps). scikit-learn is needed by this script only.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from nnunet_rdvit.classification import (
    BlockRecurrentViT,
    EdgeRecViT,
    RaptorViT,
    RecurrentDepthViT,
    VisionTransformer,
)
from nnunet_rdvit.classification.data import Augmentation
from nnunet_rdvit.classification.distributed import setup_distributed
from nnunet_rdvit.classification.evaluate import evaluate
from nnunet_rdvit.classification.flops import count_parameters, flops_per_image
from nnunet_rdvit.classification.objective import ClassificationObjective
from nnunet_rdvit.classification.raptor import RaptorDistillation
from nnunet_rdvit.classification.train import TrainSettings, fit, seed_everything
from nnunet_rdvit.commands.argument_types import positive_int

GEOMETRY = dict(img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=32, num_heads=4)
DEPTH = 6
MODELS = {
    "ViT (6 blocks)": lambda: VisionTransformer(**GEOMETRY, depth=DEPTH),
    "bViT (1 block x 6)": lambda: BlockRecurrentViT(**GEOMETRY, num_loops=DEPTH),
    "bViT-TE (1 block x 6)": lambda: BlockRecurrentViT(**GEOMETRY, num_loops=DEPTH, time_embedding=True),
    "RD-ViT (LTI+ACT+LoRA, 6)": lambda: RecurrentDepthViT(**GEOMETRY, num_loops=DEPTH, lora_rank=4),
    "Edge-RecViT (1+4+1)": lambda: EdgeRecViT(**GEOMETRY, depth=DEPTH),
}
RAPTOR = "Raptor k=2 (from the ViT)"


def load_split(seed: int) -> tuple[TensorDataset, TensorDataset]:
    """Stratified 80/20 split of the 1,797 digits as standardised 1×8×8 images."""
    digits = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(digits.images, digits.target, test_size=0.2,
                                                        stratify=digits.target, random_state=seed)
    train_x = torch.tensor(train_x, dtype=torch.float32).unsqueeze(1)
    test_x = torch.tensor(test_x, dtype=torch.float32).unsqueeze(1)
    mean, std = train_x.mean(), train_x.std()
    return (TensorDataset((train_x - mean) / std, torch.tensor(train_y)),
            TensorDataset((test_x - mean) / std, torch.tensor(test_y)))


def run_seed(seed: int, settings: TrainSettings, loops: list[int], work: Path) -> dict[str, dict]:
    """Train every model (and the Raptor student) on one split; train time is this process's CPU time,
    which parallel seeds and other load on the machine do not inflate."""
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and seeds run in parallel processes
    ctx = setup_distributed("cpu")
    train_set, test_set = load_split(seed)
    loader = DataLoader(test_set, batch_size=256)
    meta = {"model_name": "digits", "model_kwargs": {}, "class_names": [str(i) for i in range(10)]}
    sample = test_set.tensors[0][:64]
    results, trained = {}, {}
    for name, build in MODELS.items():
        seed_everything(seed)
        model = build()
        started = time.process_time()
        fit(model, ClassificationObjective(settings.loss_weights, settings.label_smoothing), train_set, None,
            settings, work / f"{seed}-{len(trained)}", meta, ctx)
        seconds = time.process_time() - started
        trained[name] = model
        result = evaluate(model, loader, ctx)
        results[name] = {"top1": result.top1, "seconds": seconds, "params": count_parameters(model),
                         "flops": flops_per_image(model, sample), "mean_depth": result.mean_depth}
        if model.num_loops is not None:
            results[name]["sweep"] = {n: evaluate(model, loader, ctx, n_loops=n).top1 for n in loops}

    teacher = trained["ViT (6 blocks)"]
    seed_everything(seed)
    student = RaptorViT(**GEOMETRY, depth=DEPTH, num_blocks=2)
    student.init_from_teacher(teacher)
    student.freeze_teacher_parts()  # Raptor learns the blocks only, as in `classify distill`
    started = time.process_time()
    fit(student, RaptorDistillation(teacher), train_set, None, settings, work / f"{seed}-raptor", meta, ctx)
    results[RAPTOR] = {"top1": evaluate(student, loader, ctx).top1, "seconds": time.process_time() - started,
                       "params": count_parameters(student), "flops": flops_per_image(student, sample),
                       "mean_depth": None}
    return results


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:6.2f}"
    return f"{statistics.mean(values):6.2f} ± {statistics.stdev(values):4.2f}"


def print_tables(runs: list[dict[str, dict]], loops: list[int], settings: TrainSettings) -> None:
    print(f"\nsklearn digits, {len(runs)} seed(s), {settings.epochs} epochs, batch {settings.batch_size}, "
          f"AdamW lr {settings.lr}, test set 360 images")
    print(f"{'model':28} {'top-1 % (test)':>16} {'params':>8} {'kFLOPs/img':>11} {'train CPU s':>11} "
          f"{'mean depth':>10}  per seed")
    for name in runs[0]:
        rows = [run[name] for run in runs]
        depth = [r["mean_depth"] for r in rows if r["mean_depth"] is not None]
        print(f"{name:28} {_mean_sd([r['top1'] for r in rows]):>16} {rows[0]['params']:8d} "
              f"{statistics.mean(r['flops'] for r in rows) / 1e3:11.0f} "
              f"{statistics.mean(r['seconds'] for r in rows):11.1f} "
              f"{(f'{statistics.mean(depth):.2f}' if depth else '-'):>10}  "
              + " ".join(f"{r['top1']:.1f}" for r in rows))
    print("\naccuracy (top-1 %) against inference steps; trained at 6 (Edge-RecViT: shared passes, trained at 4)")
    print(f"{'model':28} " + " ".join(f"{n:>8}" for n in loops))
    for name in runs[0]:
        if "sweep" in runs[0][name]:
            print(f"{name:28} " + " ".join(
                f"{statistics.mean(run[name]['sweep'][n] for run in runs):8.2f}" for n in loops))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds 0 … N-1 (default: 3)")
    parser.add_argument("--epochs", type=positive_int, default=30, help="epochs per model (default: 30)")
    parser.add_argument("--processes", type=positive_int, help="seeds trained in parallel (default: all of them)")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    settings = TrainSettings(epochs=args.epochs, batch_size=128, lr=6e-3, min_lr=1e-5, warmup_epochs=1,
                             workers=0, progress=False, augmentation=Augmentation(auto_augment=None))
    loops = [1, 2, 3, 4, 6, 9, 12]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work, multiprocessing.get_context("spawn").Pool(
            args.processes or args.seeds) as pool:
        runs = pool.map(partial(run_seed, settings=settings, loops=loops, work=Path(work)), range(args.seeds))
    print_tables(runs, loops, settings)
    total_cpu = sum(sum(model["seconds"] for model in run.values()) for run in runs)
    print(f"\nwall {time.perf_counter() - started:.0f} s for {args.seeds} seed(s) in "
          f"{args.processes or args.seeds} process(es), one thread each; training CPU time {total_cpu:.0f} s; "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()

"""The ImageFolder runs behind ``nnunet-rdvit classify``: train, distil, evaluate and list models."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nnunet_rdvit.classification.checkpoint import load_checkpoint
from nnunet_rdvit.classification.data import check_same_classes, create_transforms, eval_loader, image_folder
from nnunet_rdvit.classification.distributed import DistributedContext, setup_distributed
from nnunet_rdvit.classification.edge_recvit import EdgeRecViT
from nnunet_rdvit.classification.evaluate import evaluate
from nnunet_rdvit.classification.flops import count_parameters, flops_per_image
from nnunet_rdvit.classification.objective import ClassificationObjective
from nnunet_rdvit.classification.raptor import RaptorDistillation, equal_phases, find_phases, layer_similarity
from nnunet_rdvit.classification.registry import MODEL_CONFIGS, create_classifier
from nnunet_rdvit.classification.report import write_report
from nnunet_rdvit.classification.train import TrainSettings, autocast_dtype, fit, seed_everything
from nnunet_rdvit.classification.vit import VisionTransformer
from nnunet_rdvit.errors import UserError

TEACHER_PREFIX, STUDENT_PREFIX = "vit_baseline_", "raptor_"


def _folder_datasets(data: Path, train_set: Dataset, model: nn.Module, settings: TrainSettings,
                     class_names: list[str] | None) -> tuple[Dataset, Dataset | None]:
    """Give ``train_set`` (``data/train``) timm's training augmentation; load ``data/val`` (optional) with
    the eval transform; check both against ``class_names`` (a checkpoint's) and each other."""
    train_set.transform = create_transforms(model, settings.augmentation)
    if class_names is not None:
        check_same_classes(class_names, train_set.classes, f"{data}/train")
    if not (Path(data) / "val").exists():
        print(f"no {data}/val folder: training without validation")
        return train_set, None
    val_set = image_folder(data, "val", create_transforms(model, None))
    check_same_classes(train_set.classes, val_set.classes, f"{data}/val")
    return train_set, val_set


def _announce(ctx: DistributedContext, model: nn.Module, name: str, settings: TrainSettings, train_set: Dataset,
              val_set: Dataset | None) -> None:
    if ctx.is_main:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"{name}: {count_parameters(model) / 1e6:.2f} M parameters ({trainable / 1e6:.2f} M trained); "
              f"{len(train_set)} training / {len(val_set) if val_set is not None else 0} validation images; "
              f"{ctx.world_size} process(es) on {ctx.device.type}, batch {settings.batch_size} per process, "
              f"lr {settings.learning_rate(ctx.world_size):.3g}", flush=True)


def train_on_folder(data: Path, output: Path, model_name: str | None, model_kwargs: dict[str, Any],
                    settings: TrainSettings, device: str = "auto", resume: Path | None = None) -> list[dict]:
    """Train a registered classifier on ``data/train`` (validating on ``data/val``). On ``resume`` the
    model and the settings are those stored in the checkpoint."""
    ctx = setup_distributed(device)
    class_names = None
    if resume is not None:
        state = load_checkpoint(resume)
        if model_name not in (None, state["model_name"]):
            raise UserError(f"--arch {model_name} differs from the checkpoint's {state['model_name']}; "
                            "omit --arch when resuming")
        model_name, model_kwargs = state["model_name"], state["model_kwargs"]
        settings, class_names = TrainSettings.from_dict(state["settings"]), state["class_names"]
    if model_name is None:
        raise UserError("give --arch (see 'nnunet-rdvit classify models') or --resume")
    train_set = image_folder(data, "train")
    model_kwargs = {**model_kwargs, "num_classes": len(train_set.classes)}
    seed_everything(settings.seed)
    model = create_classifier(model_name, model_kwargs)
    augmentation = settings.augmentation
    if augmentation.mixup or augmentation.cutmix:
        if isinstance(model, EdgeRecViT) and model.ranker is not None:
            raise UserError("Edge-RecViT is trained without mixup/cutmix (label mixing breaks the ranker's "
                            "supervision); drop --mixup/--cutmix")
        if settings.batch_size % 2:
            raise UserError(f"mixup/cutmix pair images within a batch; use an even --batch-size, "
                            f"not {settings.batch_size}")
    train_set, val_set = _folder_datasets(data, train_set, model, settings, class_names)
    _announce(ctx, model, model_name, settings, train_set, val_set)
    meta = {"model_name": model_name, "model_kwargs": model_kwargs, "class_names": train_set.classes}
    objective = ClassificationObjective(settings.loss_weights, settings.label_smoothing)
    return fit(model, objective, train_set, val_set, settings, output, meta, ctx, resume)


def _load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    state = load_checkpoint(path)
    model = create_classifier(state["model_name"], state["model_kwargs"])
    model.load_state_dict(state["model"])
    return model, state


def _phases(spec: str | None, num_blocks: int, teacher: VisionTransformer, images: torch.Tensor) -> list[int]:
    """``None`` → equal phases; "auto" → from the teacher's layer similarity; "4,8" → as given."""
    depth = len(teacher.blocks)
    if spec in (None, "auto") and num_blocks > depth:  # explicit layer counts give the number of blocks themselves
        raise UserError(f"--blocks {num_blocks} is more recurrent blocks than the teacher has layers ({depth}); "
                        f"give --blocks 1 to {depth}")
    if spec is None:
        return equal_phases(depth, num_blocks)
    if spec == "auto":
        with torch.no_grad():
            states = teacher.eval().trajectory(teacher.embed(images)[0])[1:]
        return find_phases(layer_similarity(states), num_blocks)
    try:
        phases = [int(part) for part in spec.split(",")]
    except ValueError:
        raise UserError(f"--phases must be 'auto' or comma-separated layer counts like 4,8, got {spec!r}") from None
    if sum(phases) != depth or min(phases) < 1:
        raise UserError(f"--phases {spec} must be positive layer counts summing to the teacher's depth {depth}")
    return phases


def distill_on_folder(data: Path, output: Path, teacher_path: Path | None, num_blocks: int, phases: str | None,
                      settings: TrainSettings, device: str = "auto", resume: Path | None = None) -> list[dict]:
    """Raptor: distil a trained ViT baseline (a ``classify train`` checkpoint) into ``num_blocks``
    recurrent blocks on ``data/train``; validation accuracy uses the teacher's (frozen) head."""
    ctx = setup_distributed(device)
    student_kwargs = None
    if resume is not None:
        state = load_checkpoint(resume)
        teacher_path, student_kwargs = Path(state["teacher"]), state["model_kwargs"]
        settings = TrainSettings.from_dict(state["settings"])
    if teacher_path is None:
        raise UserError("give --teacher, a checkpoint of a vit_baseline_* model from 'nnunet-rdvit classify train'")
    teacher, teacher_state = _load_model(teacher_path)
    if not isinstance(teacher, VisionTransformer):
        raise UserError(f"the teacher must be a vit_baseline_* model; {teacher_path} holds "
                        f"{teacher_state['model_name']}")
    seed_everything(settings.seed)
    train_set, val_set = _folder_datasets(data, image_folder(data, "train"), teacher, settings,
                                          teacher_state["class_names"])
    if student_kwargs is None:
        transform = create_transforms(teacher, None)
        sample = torch.stack([transform(train_set.loader(path)) for path, _ in train_set.samples[:32]])
        student_kwargs = {**teacher_state["model_kwargs"], "phases": _phases(phases, num_blocks, teacher, sample)}
    student_name = STUDENT_PREFIX + teacher_state["model_name"].removeprefix(TEACHER_PREFIX)
    student = create_classifier(student_name, student_kwargs)
    student.init_from_teacher(teacher)
    student.freeze_teacher_parts()  # Raptor learns the blocks only
    _announce(ctx, student, f"{student_name} phases {student.phases}", settings, train_set, val_set)
    meta = {"model_name": student_name, "model_kwargs": student_kwargs, "class_names": train_set.classes,
            "teacher": str(Path(teacher_path).resolve())}
    objective = RaptorDistillation(teacher.to(ctx.device))
    return fit(student, objective, train_set, val_set, settings, output, meta, ctx, resume)


def default_loop_sweep(num_loops: int) -> list[int]:
    """Fewer, as many as and more steps than trained (up to twice)."""
    half = max(1, num_loops // 2)
    return sorted({1, half, num_loops, num_loops + half, 2 * num_loops})


def evaluate_checkpoint(checkpoint: Path, data: Path, split: str, output: Path | None, batch_size: int = 128,
                        workers: int = 4, device: str = "auto", amp: str = "auto",
                        loops: Sequence[int] | None = None) -> dict[str, Any]:
    """Top-1/top-5, img/s, parameters, FLOPs per image (on real images), and for recurrent models
    accuracy against inference steps; rank 0 writes eval.json and the figures to ``output``."""
    ctx = setup_distributed(device)
    model, state = _load_model(checkpoint)
    if loops and model.num_loops is None:
        raise UserError(f"{state['model_name']} in {checkpoint} is not a recurrent model, so it has no inference "
                        "steps to sweep; drop --loops")
    model.to(ctx.device)
    dataset = image_folder(data, split, create_transforms(model, None))
    check_same_classes(state["class_names"], dataset.classes, f"{data}/{split}")
    loader = eval_loader(dataset, batch_size, ctx, workers)
    dtype = autocast_dtype(amp, ctx.device)
    result = evaluate(model, loader, ctx, dtype, progress=True)
    sample = next(iter(DataLoader(dataset, batch_size=min(8, len(dataset)))))[0].to(ctx.device)
    report: dict[str, Any] = {
        "model_name": state["model_name"], "checkpoint": str(checkpoint), "data": str(Path(data) / split),
        "epoch": state.get("epoch"), "images": result.images, "top1": result.top1, "top5": result.top5,
        "loss": result.loss, "images_per_second": result.images_per_second, "batch_size": batch_size,
        "device": ctx.device.type, "processes": ctx.world_size, "parameters": count_parameters(model),
        "flops_per_image": flops_per_image(model, sample),
    }
    if result.depth_counts is not None:
        report.update(depth_histogram=result.depth_counts, mean_depth=result.mean_depth,
                      depth_unit="layers" if isinstance(model, EdgeRecViT) else "ACT loops")
    if model.num_loops is not None:
        report["trained_loops"] = model.num_loops
        report["loops_sweep"] = []
        for n_loops in loops or default_loop_sweep(model.num_loops):
            swept = evaluate(model, loader, ctx, dtype, n_loops=n_loops)
            report["loops_sweep"].append({"n_loops": n_loops, "top1": swept.top1, "top5": swept.top5,
                                          "mean_depth": swept.mean_depth,
                                          "flops_per_image": flops_per_image(model, sample, n_loops)})
    if ctx.is_main and output is not None:
        report["written"] = [str(p) for p in write_report(output, report)]
    return report


def model_table(names: Sequence[str] | None = None, flops: bool = False, img_size: int = 224) -> list[dict]:
    """Parameters (and FLOPs per image on a random image) of registered models at ImageNet settings."""
    rows = []
    for name in names or MODEL_CONFIGS:
        model = create_classifier(name, {"img_size": img_size})
        row = {"model": name, "class": type(model).__name__, "parameters": count_parameters(model)}
        if flops:
            row["flops_per_image"] = flops_per_image(model, torch.randn(1, *model.input_size))
        rows.append(row)
    return rows

"""``nnunet-rdvit classify``: train, distil and evaluate the ImageNet-style classifiers; list models.

Multi-GPU: ``torchrun --nproc_per_node N -m nnunet_rdvit classify train …`` (DDP; batch size is per GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_rdvit.commands import common_arguments as common
from nnunet_rdvit.commands.argument_types import (existing_file, existing_folder, float_in_range, key_value,
                                                  non_negative_float, non_negative_int, output_folder,
                                                  positive_float, positive_int, probability)
from nnunet_rdvit.paths import check_output_outside, creatable_folder_problem

NAME = "classify"
HELP = ("ImageNet-style classification with ViT, bViT, RD-ViT, Edge-RecViT and Raptor students: "
        "train | distill | eval | models.")


def _add_run_arguments(parser: argparse.ArgumentParser, output_required: bool) -> None:
    """What every training run (train, distill) takes: data, output, recipe, hardware."""
    parser.add_argument("--data", type=existing_folder, required=True,
                        help="dataset root in the ImageNet layout: DATA/train/<class>/…, "
                             "optional DATA/val/<class>/…")
    common.add_output_folder(parser, "last.pt, history.json (default with --resume: the checkpoint's folder)",
                             required=output_required, kind=output_folder)
    parser.add_argument("--resume", type=existing_file, metavar="FILE",
                        help="continue a run from its checkpoint (e.g. OUTDIR/last.pt); model and recipe come from "
                             "the checkpoint")
    recipe = parser.add_argument_group("recipe (DeiT defaults)")
    recipe.add_argument("--epochs", type=positive_int, default=300)
    recipe.add_argument("--batch-size", type=positive_int, default=128, help="per process (default 128)")
    recipe.add_argument("--lr", type=positive_float, help="peak learning rate (default 5e-4 x global batch / 512)")
    recipe.add_argument("--min-lr", type=non_negative_float, default=1e-6)
    recipe.add_argument("--weight-decay", type=non_negative_float, default=0.05)
    recipe.add_argument("--warmup-epochs", type=non_negative_int, default=5)
    recipe.add_argument("--smoothing", type=probability, default=0.1, help="label smoothing (default 0.1)")
    recipe.add_argument("--clip-grad", type=non_negative_float, default=1.0, help="gradient-norm clip, 0 = off")
    recipe.add_argument("--aa", default="rand-m9-mstd0.5-inc1", help="timm auto-augment policy, 'none' = off")
    recipe.add_argument("--reprob", type=probability, default=0.25, help="random-erasing probability")
    recipe.add_argument("--hflip", type=probability, default=0.5)
    recipe.add_argument("--color-jitter", type=non_negative_float, default=0.3)
    recipe.add_argument("--min-scale", type=float_in_range(0.0, 1.0, include_minimum=False), default=0.08,
                        help="random-resized-crop scale")
    recipe.add_argument("--seed", type=non_negative_int, default=0)
    hardware = parser.add_argument_group("hardware and output")
    common.add_device(hardware)
    hardware.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                          help="mixed precision on CUDA (auto: bf16 where supported, else fp16 with a grad scaler)")
    hardware.add_argument("--workers", type=non_negative_int, default=4,
                          help="data-loading processes per training process")
    hardware.add_argument("--eval-every", type=positive_int, default=1, help="validate every N epochs")
    hardware.add_argument("--save-every", type=non_negative_int, default=0,
                          help="also keep epoch_NNNN.pt every N epochs")
    common.add_disable_progress_bar(hardware)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    train = actions.add_parser("train", help="train a registered classifier on an image folder")
    train.add_argument("--arch", metavar="NAME",
                       help="registered architecture (see 'classify models'), e.g. bvit_base_patch16_224")
    train.add_argument("--arch-arg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="constructor argument of --arch, repeatable (e.g. --arch-arg img_size=32 --arch-arg "
                            "num_loops=6)")
    _add_run_arguments(train, output_required=False)
    losses = train.add_argument_group("auxiliary loss weights")
    losses.add_argument("--mixup", type=non_negative_float, default=0.0, help="mixup alpha (0 = off)")
    losses.add_argument("--cutmix", type=non_negative_float, default=0.0, help="cutmix alpha (0 = off)")
    losses.add_argument("--ponder-weight", type=non_negative_float, default=0.01, help="RD-ViT ACT ponder loss")
    losses.add_argument("--balance-weight", type=non_negative_float, default=0.01, help="MoE balance loss")
    losses.add_argument("--z-weight", type=non_negative_float, default=0.001, help="MoE router z-loss")
    losses.add_argument("--stb-weight", type=non_negative_float, default=0.01, help="Edge-RecViT lambda_stb")
    losses.add_argument("--du-weight", type=non_negative_float, default=0.1, help="Edge-RecViT lambda_du")

    distill = actions.add_parser("distill", help="Raptor: distil a trained vit_baseline_* into k recurrent blocks")
    distill.add_argument("--teacher", type=existing_file, metavar="FILE",
                         help="checkpoint of a vit_baseline_* model from 'classify train'")
    distill.add_argument("--blocks", type=positive_int, default=2, help="recurrent blocks k (default 2)")
    distill.add_argument("--phases", help="'auto' (from the teacher's layer similarity) or layer counts like 4,8 "
                                          "(default: equal)")
    _add_run_arguments(distill, output_required=False)

    evaluate = actions.add_parser("eval", help="top-1/top-5, img/s, parameters, FLOPs, depth sweep and histogram")
    evaluate.add_argument("--checkpoint", type=existing_file, required=True, metavar="FILE",
                          help="a checkpoint file of 'classify train' or 'classify distill', e.g. OUTDIR/last.pt")
    evaluate.add_argument("--data", type=existing_folder, required=True, help="dataset root (ImageNet layout)")
    evaluate.add_argument("--split", default="val", help="sub-folder to evaluate (default val)")
    common.add_output_folder(evaluate, "eval.json and the figures (default: CHECKPOINT_FOLDER/eval_SPLIT)",
                             kind=output_folder)
    evaluate.add_argument("--batch-size", type=positive_int, default=128)
    evaluate.add_argument("--workers", type=non_negative_int, default=4)
    common.add_device(evaluate)
    evaluate.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto")
    evaluate.add_argument("--loops", type=positive_int, nargs="+",
                          help="inference steps to sweep for recurrent models (default: 1, T/2, T, 3T/2, 2T)")

    models = actions.add_parser("models", help="list the registered models with parameters (and FLOPs)")
    models.add_argument("names", nargs="*", help="models to list (default: all)")
    models.add_argument("--flops", action="store_true", help="also count FLOPs per image (one forward each)")
    models.add_argument("--img-size", type=positive_int, default=224)


def _settings(args: argparse.Namespace):
    from nnunet_rdvit.classification.data import Augmentation
    from nnunet_rdvit.classification.objective import LossWeights
    from nnunet_rdvit.classification.train import TrainSettings

    augmentation = Augmentation(auto_augment=None if args.aa == "none" else args.aa, re_prob=args.reprob,
                                hflip=args.hflip, color_jitter=args.color_jitter, min_scale=args.min_scale,
                                mixup=getattr(args, "mixup", 0.0), cutmix=getattr(args, "cutmix", 0.0))
    weights = LossWeights(
        ponder_loss=args.ponder_weight, balance_loss=args.balance_weight, z_loss=args.z_weight,
        stability_loss=args.stb_weight, uniformity_loss=args.du_weight,
    ) if args.action == "train" else LossWeights()
    return TrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, min_lr=args.min_lr,
        weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, label_smoothing=args.smoothing,
        clip_grad=args.clip_grad or None, seed=args.seed, workers=args.workers, amp=args.amp,
        eval_every=args.eval_every, save_every=args.save_every, progress=args.progress,
        augmentation=augmentation, loss_weights=weights,
    )


def _output(args: argparse.Namespace) -> Path:
    """The output folder: -o, else eval's CHECKPOINT_FOLDER/eval_SPLIT or the --resume checkpoint's folder;
    never inside the dataset."""
    from nnunet_rdvit.errors import UserError

    if args.output is not None:
        output = args.output
    elif args.action == "eval":
        output = args.checkpoint.parent / f"eval_{_split(args)}"
    elif args.resume is not None:
        output = args.resume.parent
    else:
        raise UserError("give -o/--output, the folder for the checkpoints and history")
    check_output_outside(output, [args.data], "-o/--output")  # in --data it would even count as a class
    if args.output is None and (problem := creatable_folder_problem(output)):  # -o was checked while parsing
        raise UserError(f"{problem}; pass -o/--output, a folder you can write to")
    return output


def _split(args: argparse.Namespace) -> str:
    from nnunet_rdvit.errors import UserError

    if Path(args.split).name != args.split or args.split in ("", ".", ".."):
        raise UserError(f"--split {args.split!r} is not a folder name; give a sub-folder of --data such as val")
    return args.split


def _print_table(rows: list[dict]) -> None:
    print(f"{'model':34} {'class':18} {'params (M)':>10}" + (f" {'GFLOPs':>8}" if rows and "flops_per_image"
                                                              in rows[0] else ""))
    for row in rows:
        line = f"{row['model']:34} {row['class']:18} {row['parameters'] / 1e6:10.2f}"
        if "flops_per_image" in row:
            line += f" {row['flops_per_image'] / 1e9:8.2f}"
        print(line)


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.classification import pipelines

    if args.action == "models":
        _print_table(pipelines.model_table(args.names or None, args.flops, args.img_size))
    elif args.action == "train":
        pipelines.train_on_folder(args.data, _output(args), args.arch, dict(args.arch_arg), _settings(args),
                                  args.device, args.resume)
    elif args.action == "distill":
        pipelines.distill_on_folder(args.data, _output(args), args.teacher, args.blocks, args.phases,
                                    _settings(args), args.device, args.resume)
    else:
        report = pipelines.evaluate_checkpoint(args.checkpoint, args.data, _split(args), _output(args),
                                               args.batch_size, args.workers, args.device, args.amp, args.loops)
        _print_report(report)
    return 0


def _print_report(report: dict) -> None:
    if "written" not in report:  # not rank 0
        return
    print(f"{report['model_name']}: top-1 {report['top1']:.2f}%  top-5 {report['top5']:.2f}%  "
          f"loss {report['loss']:.4f}  on {report['images']} images")
    print(f"{report['parameters'] / 1e6:.2f} M parameters, {report['flops_per_image'] / 1e9:.3f} GFLOPs/image, "
          f"{report['images_per_second']:.1f} images/s ({report['device']}, batch {report['batch_size']})")
    if report.get("mean_depth") is not None:
        print(f"mean per-token depth {report['mean_depth']:.2f} {report['depth_unit']}")
    for row in report.get("loops_sweep", []):
        print(f"  n_loops {row['n_loops']:3d}: top-1 {row['top1']:6.2f}%  top-5 {row['top5']:6.2f}%  "
              f"{row['flops_per_image'] / 1e9:.3f} GFLOPs/image")
    print("wrote " + ", ".join(report["written"]))

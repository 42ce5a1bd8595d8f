"""``nnunet-rdvit demo``: the whole pipeline on a small built-in synthetic dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "demo"
HELP = ("Generate a small synthetic ACDC-style dataset, then plan, preprocess, train an RD-ViT, predict and "
        "evaluate with the stock nnU-Net commands (a few minutes on a laptop CPU).")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=Path("nnunet_rdvit_demo"),
                        help="folder for everything the demo writes (default: ./nnunet_rdvit_demo)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo's output folder")
    parser.add_argument("--train-patients", type=_positive_int, default=10,
                        help="synthetic training patients, two frames each (default 10, at least 5 for 5 folds)")
    parser.add_argument("--test-patients", type=_positive_int, default=4, help="held-out patients (default 4)")
    parser.add_argument("-c", "--configuration", choices=("2d", "3d_fullres"), default="2d")
    parser.add_argument("-tr", "--trainer", default="RDViTTrainer_demo",
                        help="trainer to use (default RDViTTrainer_demo: 10 epochs x 25 iterations)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.demo import DemoSettings, print_result, run_demo
    from nnunet_rdvit.errors import UserError

    if args.train_patients < 5:
        raise UserError(f"--train-patients must be at least 5 for nnU-Net's 5-fold split, got {args.train_patients}")
    settings = DemoSettings(output=args.output, overwrite=args.overwrite, train_patients=args.train_patients,
                            test_patients=args.test_patients, configuration=args.configuration,
                            trainer=args.trainer, device=args.device, seed=args.seed)
    print_result(run_demo(settings), settings)
    return 0

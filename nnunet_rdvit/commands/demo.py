"""``nnunet-rdvit demo``: the whole pipeline on a small built-in synthetic dataset."""

from __future__ import annotations

import argparse

from nnunet_rdvit.commands import common_arguments as common
from nnunet_rdvit.commands.argument_types import int_in_range, non_negative_int, output_folder

NAME = "demo"
HELP = ("Generate a small synthetic ACDC-style dataset, then plan, preprocess, train an RD-ViT, predict and "
        "evaluate with the stock nnU-Net commands (a few minutes on a laptop CPU).")
# The synthetic patients are numbered like ACDC's: training 001-100, held-out (testing) from 101 on.
MAX_TRAIN_PATIENTS, MAX_TEST_PATIENTS = 100, 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_output_folder(parser, "everything the demo writes (default: ./nnunet_rdvit_demo)",
                             default="nnunet_rdvit_demo", kind=output_folder)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo's output folder")
    parser.add_argument("--train-patients", default=10,
                        type=int_in_range(5, MAX_TRAIN_PATIENTS, "at least 5 for nnU-Net's 5-fold split, at most "
                                          f"ACDC's {MAX_TRAIN_PATIENTS}: training patients are numbered 001-100"),
                        help=f"synthetic training patients, two frames each (default 10; 5 to {MAX_TRAIN_PATIENTS})")
    parser.add_argument("--test-patients", default=4,
                        type=int_in_range(1, MAX_TEST_PATIENTS, f"ACDC's {MAX_TEST_PATIENTS} test patients, "
                                          "numbered from 101"),
                        help=f"held-out patients (default 4; 1 to {MAX_TEST_PATIENTS})")
    parser.add_argument("-c", "--configuration", choices=("2d", "3d_fullres"), default="2d",
                        help="nnU-Net configuration (default: 2d)")
    parser.add_argument("-tr", "--trainer", default="RDViTTrainer_demo",
                        help="trainer to use (default RDViTTrainer_demo: 10 epochs x 25 iterations)")
    common.add_device(parser)
    parser.add_argument("--seed", type=non_negative_int, default=0)


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.demo import DemoSettings, print_result, run_demo

    settings = DemoSettings(output=args.output, overwrite=args.overwrite, train_patients=args.train_patients,
                            test_patients=args.test_patients, configuration=args.configuration,
                            trainer=args.trainer, device=args.device, seed=args.seed)
    print_result(run_demo(settings), settings)
    return 0

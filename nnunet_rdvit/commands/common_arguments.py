"""The arguments several commands share, each defined once so that it is spelled, typed and explained the same
way in every command's ``--help``.

The convention: a flag that nnU-Net's own commands have keeps nnU-Net's spelling and meaning (``-m`` model
folder, ``-d`` dataset, ``-c`` configuration, ``-f`` folds, ``-tr`` trainer, ``-p`` plans, ``-chk`` checkpoint
name, ``-step_size``, ``--disable_tta``, ``-device``, ``--disable_progress_bar``); the package's own flags are
hyphenated long options (``--max-cases``). Each flag has one meaning across the whole command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Union

from nnunet_rdvit.commands.argument_types import fold, non_negative_int, tile_step
from nnunet_rdvit.devices import DEVICE_CHOICES

# A parser or one of its argument groups (which --help shows under a heading).
Arguments = Union[argparse.ArgumentParser, argparse._ArgumentGroup]
DEFAULT_CHECKPOINT = "checkpoint_final.pth"
MODEL_FOLDER = "MODEL_DIR"
OUTPUT_FOLDER = "OUTDIR"
MIRRORING_COST = "at 4× (2d) / 8× (3d) the inference time"


def add_dataset(parser: Arguments) -> None:
    """``-d/--dataset``: nnU-Net's dataset, by id or name."""
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name, e.g. 27 or Dataset027_ACDC")


def add_plans(parser: Arguments) -> None:
    """``-p/--plans``: nnU-Net's plans identifier."""
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")


def add_model_folder(parser: Arguments) -> None:
    """``-m/--model MODEL_DIR``: a trained nnU-Net model folder (nnU-Net's ``-m`` of predict_from_modelfolder)."""
    parser.add_argument("-m", "--model", required=True, type=Path, metavar=MODEL_FOLDER,
                        help="trained model folder, nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIGURATION")


def add_checkpoint_name(parser: Arguments) -> None:
    """``-chk NAME``: which checkpoint file of each fold folder to load (nnU-Net's ``-chk``)."""
    parser.add_argument("-chk", dest="checkpoint", default=DEFAULT_CHECKPOINT, metavar="NAME",
                        help=f"checkpoint file name inside each fold_N (default: {DEFAULT_CHECKPOINT}; e.g. "
                             "checkpoint_best.pth)")


def add_folds(parser: Arguments, *, several: bool, trained: bool, default: object,
              role: str) -> None:
    """``-f/--folds FOLD …`` (``several``) or ``-f/--fold FOLD``: folds of nnU-Net's split. A ``trained`` model
    folder also has fold ``all``; a fold to train is a number of splits_final.json."""
    kind: Callable[[str], object] = fold if trained else non_negative_int
    values = "N or all (trained on every case)" if trained else "N of splits_final.json"
    parser.add_argument("-f", "--folds" if several else "--fold", nargs="+" if several else None, type=kind,
                        default=default, metavar="FOLD",
                        help=f"{'folds' if several else 'fold'} of nnU-Net's split, {values}: {role}")


def add_step_size(parser: Arguments) -> None:
    """``-step_size S``: nnU-Net's sliding-window step."""
    parser.add_argument("-step_size", dest="step_size", type=tile_step, default=0.5, metavar="S",
                        help="sliding-window step as a fraction of the patch, 0.1 to 1 (default: 0.5, nnU-Net's)")


def add_disable_tta(parser: Arguments) -> None:
    """``--disable_tta``: nnU-Net's switch for test-time mirroring, which is on unless given."""
    parser.add_argument("--disable_tta", dest="mirroring", action="store_false",
                        help=f"no test-time mirroring (nnU-Net mirrors by default, along the axes the trainer "
                             f"allows, {MIRRORING_COST})")


def add_enable_tta(parser: Arguments) -> None:
    """``--enable_tta``: test-time mirroring for a command that predicts without it unless asked (``analyze``,
    whose sweep predicts every case many times)."""
    parser.add_argument("--enable_tta", dest="mirroring", action="store_true",
                        help=f"test-time mirroring, as nnU-Net's default (off by default here, unlike in predict: "
                             f"the sweep predicts every case many times, each {MIRRORING_COST})")


def add_device(parser: Arguments) -> None:
    """``-device auto|cpu|cuda`` (nnU-Net's ``-device``, plus ``auto``)."""
    parser.add_argument("-device", dest="device", choices=DEVICE_CHOICES, default="auto",
                        help="auto (default) uses CUDA when torch sees a GPU, else the CPU")


def add_output_folder(parser: Arguments, contents: str, *, required: bool = False,
                      default: object = None, kind: Callable[[str], Path] = Path) -> None:
    """``-o/--output OUTDIR``; ``contents`` says what goes there (and the default)."""
    parser.add_argument("-o", "--output", required=required, type=kind, default=default, metavar=OUTPUT_FOLDER,
                        help=f"output folder: {contents}")


def add_disable_progress_bar(parser: Arguments) -> None:
    """``--disable_progress_bar`` (nnU-Net's spelling); the value is ``args.progress``."""
    parser.add_argument("--disable_progress_bar", dest="progress", action="store_false",
                        help="no progress bars (nor the per-epoch lines of training)")

"""Learning curves on real data: each trainer trained at a time budget, Dice on the whole validation fold at
several points of its training, with nnU-Net's own predictor and metric.

    python benchmarks/learning_curves.py -d 27 -c 2d -f 0 -tr RDViTTrainer ViTTrainer nnUNetTrainer \\
        --minutes 30 --snapshot-minutes 5 --batch-size 8 --disable_tta -device cpu -o learning_curves/2d_min30

Trains ``<Trainer>_frac<P>_min<M>[_it<I>][_bs<B>][_notta]`` with ``nnUNetv2_train`` (a snapshot checkpoint every
``--snapshot-minutes`` of training), then predicts the validation fold with ``nnUNetv2_predict -chk`` for every
snapshot and scores it with nnU-Net's ``compute_metrics_on_folder``; ``checkpoint_final.pth`` is nnU-Net's own
final validation. Writes ``learning_curves.{md,csv,json}`` and ``learning_curves.png`` into ``-o``. Interrupted?
Run the same command again: finished trainings are skipped, interrupted ones continue with ``--c``, and
evaluated checkpoints are not evaluated again. See docs/learning_curves.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from nnunet_rdvit.commands import common_arguments as common
from nnunet_rdvit.commands.argument_types import (data_percent, existing_folder, float_in_range, output_folder,
                                                  positive_int, training_minutes)
from nnunet_rdvit.errors import UserError, exit_status
from nnunet_rdvit.fraction_trainer_names import FRACTION_BASES

PROG = "learning_curves.py"
DEFAULT_TRAINERS = ("RDViTTrainer", "ViTTrainer", "nnUNetTrainer")


_snapshot_minutes = float_in_range(0.0, include_minimum=False,
                                   why="minutes of training between two points of the curve, e.g. --snapshot-minutes 5")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_dataset(parser)
    parser.add_argument("-c", "--configuration", default="2d", help="nnU-Net configuration (default: 2d)")
    common.add_folds(parser, several=False, trained=False, default=0, role="the fold to train (default: 0)")
    parser.add_argument("-tr", "--trainers", nargs="+", default=list(DEFAULT_TRAINERS), metavar="TRAINER",
                        help=f"base trainers, one curve each, trained one per visible GPU (choose from "
                             f"{', '.join(FRACTION_BASES)}; default: {' '.join(DEFAULT_TRAINERS)})")
    common.add_plans(parser)
    parser.add_argument("--fraction", type=data_percent, default=100,
                        help="percentage of the fold's training patients (default: 100)")
    budget = parser.add_argument_group("training budget (part of the trainer names, --disable_tta as _notta)")
    budget.add_argument("--minutes", type=training_minutes, required=True,
                        help="minutes of training per trainer (trainer names _min<M>)")
    budget.add_argument("--snapshot-minutes", type=_snapshot_minutes, default=5.0,
                        help="a snapshot checkpoint (a point of the curve) every this many minutes of training, "
                             "less than --minutes (default: 5)")
    budget.add_argument("--iterations", type=positive_int,
                        help="training iterations per epoch instead of 250 (_it<I>): snapshots and the end of "
                             "training fall on epoch boundaries, so shorter epochs place them closer")
    budget.add_argument("--batch-size", type=positive_int, help="batch size instead of the plans' (_bs<B>)")
    common.add_disable_tta(budget)
    parser.add_argument("--test-images", type=existing_folder,
                        help="also score every checkpoint on this labelled test folder (nnU-Net's imagesTs layout)")
    parser.add_argument("--test-labels", type=existing_folder, help="the labels of --test-images (<case>.<ending>)")
    common.add_device(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the nnUNetv2_train commands still to run and exit")
    common.add_output_folder(parser, "the table, figure, predictions and logs (default: ./learning_curves)",
                             default="learning_curves", kind=output_folder)
    return parser


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.experiments.learning_curve import (CurveSetting, LearningCurve, learning_curve_grid,
                                                         markdown_report, snapshot_environment, write_learning_curves)
    from nnunet_rdvit.nnunet_folders import check_preprocessed, nnunet_folder, resolve_dataset
    from nnunet_rdvit.experiments.runner import plan_jobs, print_dry_run, resolve_devices, run_jobs
    from nnunet_rdvit.fraction_trainer_names import TimeBudget

    if args.snapshot_minutes >= args.minutes:
        raise UserError(f"--snapshot-minutes {args.snapshot_minutes:g} leaves no point before the end of the "
                        f"{args.minutes}-minute budget; give fewer minutes than --minutes, e.g. {args.minutes / 6:g}")
    test = _test_folder(args.test_images, args.test_labels)
    raw, preprocessed = nnunet_folder("nnUNet_raw"), nnunet_folder("nnUNet_preprocessed")
    results = nnunet_folder("nnUNet_results", must_exist=False)
    dataset = resolve_dataset(args.dataset, preprocessed)
    grid = learning_curve_grid(dataset, args.trainers, args.configuration, args.fold, args.fraction,
                               TimeBudget(args.minutes, args.iterations, args.batch_size), args.plans,
                               test_time_mirroring=args.mirroring)
    n_folds = check_preprocessed(preprocessed / dataset, args.plans, grid.configurations)
    if args.fold >= n_folds:
        raise UserError(f"fold {args.fold} is not in the split of {dataset} ({n_folds} folds: 0..{n_folds - 1})")
    device, gpus = resolve_devices(args.device, "auto")
    environment = snapshot_environment(args.snapshot_minutes)
    planned = plan_jobs(grid, results, device, gpus)
    if args.dry_run:
        print_dry_run(grid, planned, environment=environment)
        return 0
    failures = run_jobs(grid, planned, gpus, results, args.output / "logs", environment=environment)
    print(f"\nEvaluating the checkpoints of {dataset} {args.configuration} fold {args.fold} on {device}", flush=True)
    curve = LearningCurve(grid, results, raw, preprocessed, args.output, device, test)
    points = curve.evaluate()
    setting = CurveSetting.of(grid)
    paths = write_learning_curves(points, setting, args.output)
    print("\n" + markdown_report(points, setting))
    for description, path in paths.items():
        print(f"  {description:<18} {path}")
    if failures:
        raise UserError(f"{len(failures)} of {len(planned)} training(s) failed (their curves stop at their last "
                        f"snapshot; run the command again to continue them): "
                        + "; ".join(f"{job.label()} ({error})" for job, error in failures))
    return 0


def _test_folder(images: Path | None, labels: Path | None):
    from nnunet_rdvit.experiments.learning_curve import LabelledFolder

    if (images is None) != (labels is None):
        raise UserError("give --test-images and --test-labels together (a labelled test folder), or neither")
    if images is None:
        return None
    for folder, option in ((images, "--test-images"), (labels, "--test-labels")):
        if not folder.is_dir() or not any(folder.iterdir()):
            raise UserError(f"{option} {folder} is not a folder with files in it")
    return LabelledFolder(images.resolve(), labels.resolve())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_status(PROG, lambda: run(args), interrupted="interrupted; run the same command again to continue")


if __name__ == "__main__":
    raise SystemExit(main())

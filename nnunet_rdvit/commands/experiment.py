"""``nnunet-rdvit experiment run|aggregate``: low-data grids through ``nnUNetv2_train``, then their statistics.

``run`` trains every job of the grid that has not finished (continuing interrupted ones), spread over the
visible GPUs, then aggregates; ``run --dry-run`` only prints the commands. ``aggregate`` only summarises what
is there (e.g. after the commands ran on a cluster). ``--ablation`` makes the grid RDViTTrainer and each of its
ablations at 100 % of the data, and the report an ablation table. See docs/experiments.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnunet_rdvit.ablation_names import ABLATIONS, FULL_MODEL
from nnunet_rdvit.commands import common_arguments as common
from nnunet_rdvit.commands.argument_types import (data_percent, output_folder, positive_int, trainer_pair,
                                                  training_minutes)
from nnunet_rdvit.fraction_trainer_names import FRACTION_BASES

NAME = "experiment"
HELP = ("Run a low-data grid (trainers × data fractions × folds × configurations) or the RD-ViT ablation study "
        "(--ablation) with nnUNetv2_train, resumably and across GPUs, and summarise it: mean ± std over folds, "
        "paired Wilcoxon tests, CSV, Markdown and a Dice-vs-fraction figure.")
DEFAULT_TRAINERS = ("RDViTTrainer", "ViTTrainer", "nnUNetTrainer")
DEFAULT_FRACTIONS = (10, 25, 50, 100)
ABLATION_GRID_TRAINERS = (FULL_MODEL, *ABLATIONS)
ABLATION_FRACTIONS = (100,)


def _add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_argument_group("grid")
    common.add_dataset(grid)
    grid.add_argument("-c", "--configurations", nargs="+", default=["2d"], metavar="CONFIG",
                      help="nnU-Net configurations (default: 2d)")
    grid.add_argument("-tr", "--trainers", nargs="+", metavar="TRAINER",
                      help=f"base trainers, each run as TRAINER_frac<P>... (choose from {', '.join(FRACTION_BASES)}; "
                           f"default: {' '.join(DEFAULT_TRAINERS)})")
    grid.add_argument("--ablation", action="store_true",
                      help=f"the ablation study: trainers {' '.join(ABLATION_GRID_TRAINERS)} (instead of -tr), at "
                           f"{' '.join(map(str, ABLATION_FRACTIONS))} %% of the data unless --fractions is given; "
                           f"the report adds an ablation table (Δ and paired p against {FULL_MODEL})")
    grid.add_argument("--fractions", nargs="+", type=data_percent, metavar="PERCENT",
                      help=f"percentages of each fold's training patients (default: "
                           f"{' '.join(map(str, DEFAULT_FRACTIONS))}; with --ablation: "
                           f"{' '.join(map(str, ABLATION_FRACTIONS))})")
    common.add_folds(grid, several=True, trained=False, default=[0, 1, 2, 3, 4],
                     role="the folds to train (default: 0 1 2 3 4)")
    common.add_plans(grid)
    budget = parser.add_argument_group("training budget (the same for every trainer; part of the trainer names, "
                                       "--disable_tta as _notta)")
    budget.add_argument("--epochs", type=positive_int, help="epochs instead of nnU-Net's 1000 (needs --iterations)")
    budget.add_argument("--iterations", type=positive_int,
                        help="training iterations per epoch instead of 250 (with --epochs, or with --minutes to end "
                             "closer to the time budget)")
    budget.add_argument("--minutes", type=training_minutes,
                        help="minutes of training per job instead of an epoch count (trainer names _min<M>): "
                             "training ends at the first epoch boundary after it, with the learning-rate schedule "
                             "over the budget; not with --epochs")
    budget.add_argument("--batch-size", type=positive_int,
                        help="batch size instead of the plans' (needs --epochs and --iterations, or --minutes)")
    common.add_disable_tta(budget)
    report = parser.add_argument_group("report")
    common.add_output_folder(report, "tables, figure and logs (default: ./nnunet_rdvit_experiment)",
                             default="nnunet_rdvit_experiment", kind=output_folder)
    report.add_argument("--compare", nargs="+", type=trainer_pair, metavar="A:B",
                        help="trainer pairs for paired Wilcoxon tests (default: the first trainer against each other)")
    report.add_argument("--test", action="store_true",
                        help="also predict imagesTs with each model's fold ensemble and score it against labelsTs")
    report.add_argument("--no-hd95", action="store_true", help="Dice only (skip reading the segmentations)")
    devices = parser.add_argument_group("devices")
    common.add_device(devices)
    devices.add_argument("--gpus", default="auto",
                         help="GPUs to spread jobs over, one job per GPU: auto (all visible), none (no "
                              "CUDA_VISIBLE_DEVICES, e.g. for a scheduler), or ids like 0,1,3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_parser = actions.add_parser("run", help="train the unfinished jobs of the grid, then aggregate",
                                    description="Train every unfinished job of the grid with nnUNetv2_train "
                                                "(finished ones are skipped, interrupted ones continued with --c), "
                                                "then aggregate.")
    _add_grid_arguments(run_parser)
    run_parser.add_argument("--dry-run", action="store_true",
                            help="print one nnUNetv2_train command per unfinished job and exit (e.g. for a SLURM "
                                 "array: sed -n \"${SLURM_ARRAY_TASK_ID}p\" jobs.txt | bash)")
    aggregate_parser = actions.add_parser("aggregate", help="summarise the finished jobs of the grid",
                                          description="Summarise the finished jobs of the grid from nnU-Net's "
                                                      "validation summaries.")
    _add_grid_arguments(aggregate_parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.errors import UserError
    from nnunet_rdvit.nnunet_folders import nnunet_folder
    from nnunet_rdvit.experiments.runner import plan_jobs, print_dry_run, resolve_devices, run_jobs
    from nnunet_rdvit.paths import check_output_outside, prepare_output_folder

    grid = _grid(args)
    results = nnunet_folder("nnUNet_results", must_exist=args.action == "aggregate")
    inputs = [nnunet_folder("nnUNet_preprocessed") / grid.dataset, results / grid.dataset]
    if args.test:
        inputs.append(nnunet_folder("nnUNet_raw") / grid.dataset)  # checked now, not after the training
    check_output_outside(args.output, inputs, "-o/--output")
    if args.action == "aggregate":
        _aggregate(grid, results, args, resolve_devices(args.device, args.gpus)[0] if args.test else "cpu")
        return 0
    device, gpus = resolve_devices(args.device, args.gpus)
    planned = plan_jobs(grid, results, device, gpus)
    if args.dry_run:
        print_dry_run(grid, planned)
        return 0
    prepare_output_folder(args.output, "-o/--output")  # before hours of training, which log into it
    failures = run_jobs(grid, planned, gpus, results, args.output / "logs")
    if len(failures) < len(planned):  # some job has finished: summarise it
        _aggregate(grid, results, args, device)
    if failures:
        raise UserError(f"{len(failures)} of {len(planned)} job(s) failed: "
                        + "; ".join(f"{job.label()} ({error})" for job, error in failures))
    return 0


def _grid(args: argparse.Namespace):
    from nnunet_rdvit.errors import UserError
    from nnunet_rdvit.experiments.grid import ExperimentGrid
    from nnunet_rdvit.nnunet_folders import check_preprocessed, nnunet_folder, resolve_dataset
    from nnunet_rdvit.fraction_trainer_names import TimeBudget, TrainingBudget

    if args.minutes is not None and args.epochs is not None:
        raise UserError("a budget is either --epochs with --iterations, or --minutes (optionally with --iterations "
                        "per epoch), not both")
    if args.minutes is None and (args.epochs is None) != (args.iterations is None):
        raise UserError("give --epochs and --iterations together (the budget is epochs × iterations per epoch), "
                        "or --minutes")
    if args.batch_size is not None and args.epochs is None and args.minutes is None:
        raise UserError("--batch-size is part of a budget: give --epochs and --iterations, or --minutes, too")
    budget = (TimeBudget(args.minutes, args.iterations, args.batch_size) if args.minutes
              else TrainingBudget(args.epochs, args.iterations, args.batch_size) if args.epochs else None)
    preprocessed = nnunet_folder("nnUNet_preprocessed")
    dataset = resolve_dataset(args.dataset, preprocessed)
    if args.ablation and args.trainers:
        raise UserError(f"--ablation chooses the trainers ({' '.join(ABLATION_GRID_TRAINERS)}); leave out -tr, "
                        "or list the trainers with -tr without --ablation")
    trainers = ABLATION_GRID_TRAINERS if args.ablation else tuple(args.trainers or DEFAULT_TRAINERS)
    fractions = tuple(args.fractions or (ABLATION_FRACTIONS if args.ablation else DEFAULT_FRACTIONS))
    grid = ExperimentGrid(dataset, trainers, fractions, tuple(args.folds),
                          tuple(args.configurations), budget, args.plans, test_time_mirroring=args.mirroring)
    n_folds = check_preprocessed(preprocessed / dataset, args.plans, grid.configurations)
    too_high = [fold for fold in grid.folds if fold >= n_folds]
    if too_high:
        raise UserError(f"fold(s) {', '.join(map(str, too_high))} not in the split of {dataset} "
                        f"({n_folds} folds: 0..{n_folds - 1})")
    for first, second in args.compare or []:
        for trainer in (first, second):
            if trainer not in grid.trainers:
                raise UserError(f"--compare names {trainer!r}, which is not among the grid's trainers "
                                f"({', '.join(grid.trainers)})")
    return grid


def _aggregate(grid, results: Path, args: argparse.Namespace, device: str) -> None:
    from nnunet_rdvit.errors import UserError
    from nnunet_rdvit.experiments.ablation import ablation_rows
    from nnunet_rdvit.experiments.aggregate import (collect_validation_scores, summarise_over_cases,
                                                    summarise_over_folds)
    from nnunet_rdvit.nnunet_folders import nnunet_folder
    from nnunet_rdvit.experiments.report import ExperimentResults, ablation_table, dice_table, write_report
    from nnunet_rdvit.experiments.stats import paired_comparisons
    from nnunet_rdvit.paths import prepare_output_folder

    collected = collect_validation_scores(grid, results, nnunet_folder("nnUNet_preprocessed"),
                                          with_hd95=not args.no_hd95)
    if len(collected.missing) == len(grid.jobs()):
        jobs = grid.jobs()
        raise UserError(f"none of the grid's {len(jobs)} job(s) has finished: no fold_N/validation/summary.json "
                        f"in {grid.model_dir(results, jobs[0])}" + (" or the other jobs' folders" if len(jobs) > 1
                                                                    else "")
                        + "; run `nnunet-rdvit experiment run` with the same grid arguments first")
    prepare_output_folder(args.output, "-o/--output")
    print(f"\nAggregating {grid.dataset} into {args.output}", flush=True)
    pairs = args.compare or [(grid.trainers[0], other) for other in grid.trainers[1:]]
    metrics = ("dice",) if args.no_hd95 else ("dice", "hd95")
    summary = summarise_over_folds(collected.scores, collected.structures)
    outcome = ExperimentResults(grid, collected.structures, collected.scores, summary,
                                paired_comparisons(collected.scores, pairs, collected.structures, metrics),
                                collected.missing, collected.hd95_unavailable,
                                ablation=ablation_rows(summary, collected.scores, collected.structures, grid.trainers,
                                                       metrics))
    if args.test:
        from nnunet_rdvit.experiments.test_set import evaluate_test_set

        outcome.test_scores = evaluate_test_set(grid, results, nnunet_folder("nnUNet_raw"), args.output, device)
        outcome.test_rows = summarise_over_cases(outcome.test_scores, collected.structures)
    paths = write_report(outcome, args.output)
    if collected.missing:
        print(f"  {len(collected.missing)} job(s) not finished, left out: "
              + "; ".join(job.label() for job in collected.missing), file=sys.stderr)
    print("\nValidation Dice (mean ± std over folds):")
    print("\n".join(dice_table(outcome.validation_rows, grid, "dice")))
    if outcome.ablation:
        print(f"\nAblations: validation Dice, mean ± std over folds (Δ and paired p against {FULL_MODEL}):")
        print("\n".join(ablation_table(outcome.ablation, "dice")))
    print()
    for description, path in paths.items():
        print(f"  {description:<28} {path}")

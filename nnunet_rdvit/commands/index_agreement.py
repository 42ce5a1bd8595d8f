"""``nnunet-rdvit index-agreement``: predicted vs ground-truth cardiac indices over a labelled set.

Exit status: 0 when every matched patient was compared; 2 when nothing could be compared or when a
patient's ground truth was unreadable, its frames differ from the prediction's, or it lies on another voxel
grid than the predicted image (the others are still compared and written). See docs/inference.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_rdvit.commands import common_arguments as common

NAME = "index-agreement"
HELP = ("Compare the cardiac indices of `predict` outputs with those of ground-truth labels (ACDC layout): "
        "Pearson r, bias, SD and 95-percent limits of agreement per index, with a Bland–Altman plot — the ACDC "
        "challenge's clinical metrics.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", type=Path, metavar="PRED_DIR",
                        help="output folder of `nnunet-rdvit predict` (holds <patient>/cardiac_indices.json)")
    parser.add_argument("ground_truth", nargs="+", type=Path, metavar="GT_DIR",
                        help="ACDC-layout folder(s): patient folders with Info.cfg and *_frameNN_gt.nii.gz, or "
                             "folders holding them (e.g. the ACDC training/ folder)")
    common.add_output_folder(parser, "agreement.json, agreement.csv, agreement_cases.csv, bland_altman.png",
                             required=True)


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.errors import UserError
    from nnunet_rdvit.inference import compare_indices
    from nnunet_rdvit.inference.cardiac_indices import INDICES
    from nnunet_rdvit.number_format import MISSING, format_number

    result = compare_indices(args.predictions, args.ground_truth, args.output)
    print(f"{len(result.pairs)} patient(s) compared; outputs in {result.output}")
    print(f"  {'index':<26}{'n':>4}{'r':>8}{'bias':>9}{'SD':>9}   95 % limits of agreement")
    for index, stats in result.statistics.items():
        display, unit = INDICES[index]
        r, bias, sd = (format_number(stats[key], spec) for key, spec in (("pearson_r", ".3f"), ("bias", ".2f"),
                                                                         ("sd", ".2f")))
        limits = MISSING if stats["sd"] is None else f"[{stats['loa_lower']:.2f}, {stats['loa_upper']:.2f}] {unit}"
        print(f"  {display + f' ({unit})':<26}{stats['n']:>4}{r:>8}{bias:>9}{sd:>9}   {limits}")
    for side, names in result.unmatched.items():
        if names:
            print(f"  {side.replace('_', ' ')}: {', '.join(names[:10])}" + (" ..." if len(names) > 10 else ""))
    if result.failures:
        listed = "; ".join(f"{name}: {problem}" for name, problem in result.failures[:3])
        raise UserError(f"{len(result.failures)} patient(s) could not be compared — {listed}")
    return 0

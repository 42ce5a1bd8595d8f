"""``nnunet-rdvit convert-acdc``: the ACDC challenge folder -> an nnU-Net v2 raw dataset with patient splits."""

from __future__ import annotations

import argparse
import json

from nnunet_rdvit.commands import common_arguments as common
from nnunet_rdvit.commands.argument_types import existing_folder, int_in_range, output_folder

NAME = "convert-acdc"
HELP = ("Validate the ACDC challenge data and convert it into an nnU-Net v2 raw dataset "
        "(DatasetNNN_ACDC) with a patient-grouped 5-fold split and per-case metadata.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw_dir", metavar="RAW_DIR", type=existing_folder,
                        help="the ACDC folder that contains training/ (and optionally testing/)")
    parser.add_argument("-d", "--dataset-id", type=int_in_range(1, 999, "nnU-Net's dataset ids have three digits"),
                        default=27,
                        help="nnU-Net dataset id; the output is DatasetNNN_ACDC (default: 27, as nnU-Net's own)")
    parser.add_argument("--nnunet-raw", type=output_folder, default=None,
                        help="nnU-Net raw data folder (default: $nnUNet_raw)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing DatasetNNN_ACDC folder that holds a different dataset")
    common.add_disable_progress_bar(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.dataset_conversion import convert_acdc, load_case_metadata
    from nnunet_rdvit.dataset_conversion.acdc import SPLITS_FILE
    from nnunet_rdvit.dataset_conversion.acdc_source import GROUPS

    result = convert_acdc(args.raw_dir, args.nnunet_raw, args.dataset_id,
                          overwrite=args.overwrite, progress=args.progress)
    action = "already up to date (same source), nothing rewritten" if result.unchanged else "written"
    print(f"{result.dataset_dir.name} {action}: {result.dataset_dir}")
    print(f"  training: {result.n_training_cases} cases from {result.n_patients} patients; "
          f"testing: {result.n_test_cases} cases from {result.n_test_patients} patients")

    splits = json.loads((result.dataset_dir / SPLITS_FILE).read_text())
    metadata = load_case_metadata(result.dataset_dir)
    print(f"  {SPLITS_FILE}: {len(splits)} patient-grouped folds; validation patients per fold and group:")
    print("    fold  patients" + "".join(f"{group:>6}" for group in GROUPS))
    for fold, split in enumerate(splits):
        patients = {metadata[case]["patient"]: metadata[case]["group"] for case in split["val"]}
        counts = [sum(1 for group in patients.values() if group == wanted) for wanted in GROUPS]
        print(f"    {fold:>4}  {len(patients):>8}" + "".join(f"{count:>6}" for count in counts))
    if result.preprocessed_dir is not None:
        print(f"  splits and case metadata also in {result.preprocessed_dir}")
    print(f"  {result.seconds:.1f} s. ACDC: cite Bernard et al., IEEE TMI 37(11), 2018.")
    return 0

"""``nnunet-rdvit predict``: segment cine-MRI NIfTI volumes with a trained model, with cardiac indices.

Exit status: 0 when every case was written; 2 when the run could not start (bad input path, model folder or
output folder) or when any case failed (the others are still written; ``summary.json`` lists them).
See docs/inference.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_rdvit.commands import common_arguments as common
from nnunet_rdvit.commands.argument_types import frame_number

NAME = "predict"
HELP = ("Segment cine-MRI NIfTI volumes (files, folders, ACDC patient folders) with a trained nnU-Net model "
        "folder; write aligned segmentations, cardiac indices with a PNG report when ED and ES are known, and "
        "optionally ACT halting / MoE expert maps.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", nargs="+", required=True, type=Path, metavar="INPUT",
                        help="NIfTI file(s), folder(s) of NIfTI files, or patient folder(s) with Info.cfg and "
                             "*_frameNN.nii.gz (e.g. an ACDC patientNNN folder, or the ACDC training/ folder)")
    common.add_output_folder(parser, "created; must not be a folder that holds inputs", required=True)
    common.add_model_folder(parser)
    common.add_folds(parser, several=True, trained=True, default=None,
                     role="the folds to ensemble (default: every fold_N with the checkpoint)")
    common.add_checkpoint_name(parser)
    parser.add_argument("--ed", type=frame_number, default=None, metavar="N",
                        help="end-diastolic frame number (1-based); with --es, overrides Info.cfg and selects "
                             "frames of a 4D cine file")
    parser.add_argument("--es", type=frame_number, default=None, metavar="M",
                        help="end-systolic frame number (1-based)")
    parser.add_argument("--introspect", action="store_true",
                        help="also write the ACT halting map and the MoE dominant-expert map (RD-ViT models) with "
                             "per-structure statistics")
    common.add_device(parser)
    common.add_disable_tta(parser)
    common.add_step_size(parser)
    common.add_disable_progress_bar(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.errors import UserError
    from nnunet_rdvit.inference import PredictSettings, predict
    from nnunet_rdvit.inference.cardiac_indices import format_index

    settings = PredictSettings(inputs=args.input, output=args.output, model=args.model, folds=args.folds,
                               checkpoint=args.checkpoint, device=args.device, mirroring=args.mirroring,
                               step_size=args.step_size, ed=args.ed, es=args.es, introspect=args.introspect,
                               progress=args.progress)
    result = predict(settings)
    done = [case for case in result.cases if case.ok]
    for record in result.patients:
        print(f"{record['patient']} (ED frame {record['frames']['ED']}, ES frame {record['frames']['ES']}):")
        for name, value in record["indices"].items():
            print(f"  {format_index(name, value)}")
    if done:
        per_volume = sum(case.seconds_prediction for case in done) / len(done)
        print(f"{len(done)} volume(s) segmented in {result.seconds:.1f} s ({per_volume:.1f} s per volume for "
              f"prediction, {result.model['device']}); outputs in {result.output}")
    failures = result.failures
    if len(failures) == 1 and len(result.cases) == 1:  # a patient-level failure (Info.cfg, frames) names it
        only = failures[0]
        raise UserError(only.message if only.source != only.name else f"{only.name}: {only.message}")
    if failures:
        listed = "; ".join(f"{case.name}: {case.message}" for case in failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        where = f"; all listed in {result.output / 'summary.json'}" if done else ""
        raise UserError(f"{len(failures)} of {len(result.cases)} case(s) failed — {listed}{more}{where}")
    return 0

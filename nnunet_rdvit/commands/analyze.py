"""``nnunet-rdvit analyze -m MODEL_DIR``: depth extrapolation, ACT halting, MoE experts and training dynamics of a
trained RD-ViT fold on labelled cases, as one report folder (JSON, Markdown, PNG).

Exit status: 0 when the report was written; 2 when the analysis could not run (bad model folder or fold, a
model without loops, missing cases or nnU-Net folders).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_rdvit.commands import common_arguments as common
from nnunet_rdvit.commands.argument_types import int_in_range, non_negative_int, positive_int

NAME = "analyze"
MAX_PERMUTATIONS = 100_000
HELP = ("Analyse a trained RD-ViT fold on its validation cases (or any labelled folder): Dice against inference "
        "loops with ACT on and off, ACT halting on structure boundaries vs interiors, MoE expert specialisation, "
        "and ponder/MoE training curves; writes report.json, report.md and figures.")


# Permutations of the expert-specialisation baseline: 100,000 already resolve p-values to 1e-5.
_permutations = int_in_range(0, MAX_PERMUTATIONS, why="p-values resolve to 1/(1 + N); more only costs time")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_model_folder(parser)
    common.add_folds(parser, several=False, trained=True, default=None,
                     role="the fold to analyse (default: the first fold_N with the checkpoint); only its weights "
                          "are loaded and, without --images, its validation cases are used")
    common.add_checkpoint_name(parser)
    parser.add_argument("--images", type=Path, default=None, metavar="DIR",
                        help="labelled cases instead of the validation cases: images named CASE_0000<ending> "
                             "(nnU-Net's naming; needs --labels)")
    parser.add_argument("--labels", type=Path, default=None, metavar="DIR",
                        help="reference labels CASE<ending> for every case in --images")
    parser.add_argument("--max-cases", type=positive_int, default=None, metavar="N",
                        help="analyse only the first N cases (sorted by name), e.g. on a CPU")
    parser.add_argument("--loops", type=positive_int, nargs="+", default=None, metavar="N",
                        help="inference loop counts for depth extrapolation (default: 1 … 2T)")
    parser.add_argument("--no-act-off", action="store_true",
                        help="skip the ACT-off (fixed depth) rows of depth extrapolation (halves its time)")
    common.add_enable_tta(parser)
    common.add_step_size(parser)
    parser.add_argument("--permutations", type=_permutations, default=1000,
                        help="label permutations for the expert-specialisation baseline (default 1000, at most "
                             f"{MAX_PERMUTATIONS})")
    parser.add_argument("--examples", type=non_negative_int, default=3,
                        help="cases drawn in the halting-map example figure (default 3)")
    common.add_device(parser)
    common.add_output_folder(parser, f"the report (default: {common.MODEL_FOLDER}/fold_N/analysis); existing "
                                     "report files in it are replaced")


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.analysis.run import AnalyzeSettings, analyze
    from nnunet_rdvit.analysis.summary import summary_lines

    settings = AnalyzeSettings(model=args.model, fold=args.fold, checkpoint=args.checkpoint, images=args.images,
                               labels=args.labels, max_cases=args.max_cases, loops=args.loops,
                               act_off=not args.no_act_off, mirroring=args.mirroring, step_size=args.step_size,
                               device=args.device, output=args.output, permutations=args.permutations,
                               examples=args.examples, log=lambda line: print(line, flush=True))
    result = analyze(settings)
    for line in summary_lines(result.report):
        print(line)
    print(f"Report in {result.output} ({result.report['seconds']:.0f} s):")
    for path in result.files:
        print(f"  {path.name}")
    return 0

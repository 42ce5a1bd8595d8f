"""One learning-curve table and figure from several runs of ``learning_curves.py`` (trainers run by separate
commands, sessions or cluster jobs, into separate ``-o`` folders):

    python benchmarks/merge_learning_curves.py curves/rdvit/learning_curves.json curves/unet/learning_curves.json \\
        -o curves/2d_min30_all

The tables must share dataset, configuration, fold, data fraction, plans and budget (one figure compares one
setting), and no checkpoint may appear twice. Writes ``learning_curves.{md,csv,json}`` and ``learning_curves.png``
into ``-o``, as ``learning_curves.py`` does. See docs/learning_curves.md.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from nnunet_rdvit.commands import common_arguments as common
from nnunet_rdvit.commands.argument_types import existing_file, output_folder
from nnunet_rdvit.errors import UserError, exit_status

PROG = "merge_learning_curves.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="+", type=existing_file, metavar="JSON",
                        help="learning_curves.json files written by learning_curves.py")
    common.add_output_folder(parser, "the merged table and figure", required=True, kind=output_folder)
    return parser


def run(args: argparse.Namespace) -> int:
    from nnunet_rdvit.experiments.learning_curve import (markdown_report, merge_learning_curves,
                                                         read_learning_curves, write_learning_curves)

    tables = [(path, *read_learning_curves(path)) for path in args.tables]
    if any(path.resolve().parent == args.output.resolve() for path in args.tables):
        raise UserError(f"-o {args.output} holds one of the tables being merged; give a new folder")
    setting, points = merge_learning_curves(tables)
    paths = write_learning_curves(points, setting, args.output)
    print(markdown_report(points, setting))
    for description, path in paths.items():
        print(f"  {description:<18} {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_status(PROG, lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())

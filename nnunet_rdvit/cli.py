"""The ``nnunet-rdvit`` command line: one sub-command per module in :mod:`nnunet_rdvit.commands`.

Each command module exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Errors the user can fix are raised as :class:`UserError` and printed as one line, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Sequence

from nnunet_rdvit import __version__
from nnunet_rdvit.errors import exit_status

# Module names under nnunet_rdvit.commands, in the order `--help` lists them.
COMMANDS = ("demo", "convert_acdc", "classify", "experiment", "predict", "index_agreement", "analyze")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunet-rdvit",
        description="Recurrent-depth Vision Transformers for nnU-Net v2.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS:
        module = importlib.import_module(f"nnunet_rdvit.commands.{module_name}")
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_status(f"nnunet-rdvit {args.command}", lambda: args._run(args))


if __name__ == "__main__":
    raise SystemExit(main())

"""argparse types shared by the commands that load a trained model folder (``predict``, ``analyze``)."""

from __future__ import annotations

import argparse

from nnunet_rdvit.tile_step import tile_step_problem


def fold(text: str) -> int | str:
    """A fold of nnU-Net's split: an integer, or ``all`` for a model trained on every case."""
    if text == "all" or text.isdigit():
        return text if text == "all" else int(text)
    raise argparse.ArgumentTypeError(f"a fold is an integer or 'all', got {text!r}")


def tile_step(text: str) -> float:
    """nnU-Net's sliding-window step as a fraction of the patch (bounds in :mod:`nnunet_rdvit.tile_step`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    problem = tile_step_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value

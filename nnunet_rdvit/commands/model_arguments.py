"""argparse types shared by the commands that load a trained model folder (``predict``, ``analyze``)."""

from __future__ import annotations

import argparse


def fold(text: str) -> int | str:
    """A fold of nnU-Net's split: an integer, or ``all`` for a model trained on every case."""
    if text == "all" or text.isdigit():
        return text if text == "all" else int(text)
    raise argparse.ArgumentTypeError(f"a fold is an integer or 'all', got {text!r}")


def tile_step(text: str) -> float:
    """nnU-Net's sliding-window step as a fraction of the patch, in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"the tile step is a fraction of the patch in (0, 1], got {value}")
    return value

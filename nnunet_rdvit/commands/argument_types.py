"""argparse argument types shared by every command: numbers in their range, paths of the right kind.

A bad value is refused while the command line is parsed, before anything is read or written, with
argparse's one-line ``nnunet-rdvit CMD: error: argument --x: …`` and exit status 2. Each message names the
value and what is expected. Path types check the path's kind (:mod:`nnunet_rdvit.paths`) and return it
with ``~`` expanded.
"""

from __future__ import annotations

import argparse
import ast
import math
from pathlib import Path
from typing import Any, Callable

from nnunet_rdvit.errors import UserError
from nnunet_rdvit.paths import creatable_folder_problem, require_file, require_folder
from nnunet_rdvit.tile_step import tile_step_problem


def int_in_range(minimum: int, maximum: int | None = None, why: str = "") -> Callable[[str], int]:
    """An integer in ``[minimum, maximum]``; ``why`` (e.g. "ACDC has 100 training patients") explains the bounds."""
    expected = (f"an integer from {minimum} to {maximum}" if maximum is not None else
                {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer ≥ {minimum}"))

    explained = f"{expected}{f' ({why})' if why else ''}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {explained}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {explained}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


positive_int = int_in_range(1)
non_negative_int = int_in_range(0)
# A time budget is whole minutes: the trainer names carry it as _min<M>.
training_minutes = int_in_range(1, why="whole minutes of training, as in the trainer names' _min<M>, e.g. --minutes 30")
frame_number = int_in_range(1, why="frame numbers are 1-based, as in ACDC's Info.cfg")


def fold(text: str) -> int | str:
    """A fold of a trained model folder (fold_N): an integer, or ``all`` for a model trained on every case."""
    if text == "all":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"a fold is a non-negative integer or 'all', got {text!r}")


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


def data_percent(text: str) -> int:
    """A data fraction: a whole percentage of the fold's training patients, 1 to 100 (``10`` or ``10%``)."""
    value = text.strip().rstrip("%").strip()
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise argparse.ArgumentTypeError(f"a data fraction is a whole percentage from 1 to 100, got {text!r}")
    return int(value)


def float_in_range(minimum: float, maximum: float = math.inf, *, include_minimum: bool = True,
                   why: str = "") -> Callable[[str], float]:
    """A finite number in ``[minimum, maximum]`` (``(minimum, maximum]`` without ``include_minimum``); NaN and
    infinities are refused, as no setting means anything with them."""
    low = "[" if include_minimum else "("
    expected = (f"a finite number in {low}{minimum:g}, {maximum:g}]" if math.isfinite(maximum) else
                f"a finite number {'≥' if include_minimum else '>'} {minimum:g}")

    explained = f"{expected}{f' ({why})' if why else ''}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {explained}, got {text!r}") from None
        below = value < minimum or (value == minimum and not include_minimum)
        if not math.isfinite(value) or below or value > maximum:
            raise argparse.ArgumentTypeError(f"expected {explained}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


positive_float = float_in_range(0.0, include_minimum=False)
non_negative_float = float_in_range(0.0)
probability = float_in_range(0.0, 1.0)


def key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE a Python literal (64, 0.5, True, (8, 8)) or else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. embed_dim=192), got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def trainer_pair(text: str) -> tuple[str, str]:
    """TRAINER_A:TRAINER_B, two trainers to compare."""
    first, sep, second = text.partition(":")
    if not sep or not first or not second:
        raise argparse.ArgumentTypeError(f"a comparison is TRAINER_A:TRAINER_B, got {text!r}")
    return first, second


def existing_folder(text: str) -> Path:
    """A folder that exists (not a file of the same name)."""
    return _checked(text, lambda path: require_folder(path, "folder"))


def existing_file(text: str) -> Path:
    """A regular file that exists (not a folder, pipe or device)."""
    return _checked(text, lambda path: require_file(path, "file"))


def output_folder(text: str) -> Path:
    """A writable folder, or one that can be created (see :func:`creatable_folder_problem`); not created here."""
    def check(path: Path) -> None:
        problem = creatable_folder_problem(path)
        if problem is not None:
            raise UserError(f"{problem}; choose a folder you can write to")

    return _checked(text, check)


def _checked(text: str, check: Callable[[Path], object]) -> Path:
    """``text`` as a path, after ``check`` (which raises UserError) has passed; its message goes to argparse."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    path = Path(text).expanduser()
    try:
        check(path)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return path

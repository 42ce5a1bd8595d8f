"""Names of the data-fraction trainers: ``<Base>_frac<P>[_ep<E>_it<I>[_bs<B>]][_notta]``.

The name carries everything that distinguishes one low-data run from another — base trainer, percentage of
training patients and, when they are not nnU-Net's defaults, the training budget and whether inference uses
test-time mirroring — because nnU-Net derives the results folder (``<trainer>__<plans>__<configuration>``) from
the trainer name alone. Runs at different budgets therefore never share a folder, and a finished short run
can never be mistaken for a full one.

``_notta`` exists for small machines: nnU-Net's final validation predicts every validation case with 4 (2D)
or 8 (3D) mirrored passes, which on a CPU costs more than a short training. With it, the final validation and
later ``nnUNetv2_predict`` calls skip the mirroring (like nnU-Net's ``--disable_tta``); training augmentation
is unchanged.

This module is deliberately free of torch and nnU-Net imports: the experiment runner and the subset logic
use it without paying for them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nnunet_rdvit.ablation_names import ABLATIONS

# Trainers a data-fraction variant exists for; nnUNetTrainer (nnU-Net's default U-Net) is the reference.
FRACTION_BASES = ("RDViTTrainer", "RDViTTrainer_MoE", "ViTTrainer", "nnUNetTrainer", *ABLATIONS)
# Percentages defined as module attributes; any other integer percentage 1..100 is created on first lookup.
STANDARD_PERCENTS = (10, 25, 50, 100)
# nnU-Net validates 50 batches per 250 training iterations; budget trainers keep that ratio (at least one).
VAL_ITERATIONS_RATIO = 5

_NAME = re.compile(r"^(?P<base>.+)_frac(?P<percent>[1-9]\d{0,2})"
                   r"(?:_ep(?P<epochs>[1-9]\d*)_it(?P<iterations>[1-9]\d*)(?:_bs(?P<batch_size>[1-9]\d*))?)?"
                   r"(?P<no_tta>_notta)?$")


@dataclass(frozen=True)
class TrainingBudget:
    """Epochs × iterations per epoch (and optionally the batch size) replacing nnU-Net's 1000 × 250."""

    epochs: int
    iterations: int
    batch_size: int | None = None  # None: the batch size of the plans

    def __post_init__(self) -> None:
        for field, value in (("epochs", self.epochs), ("iterations", self.iterations)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"budget {field} must be a positive integer, got {value!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"budget batch size must be a positive integer, got {self.batch_size!r}")

    @property
    def val_iterations(self) -> int:
        return max(1, math.ceil(self.iterations / VAL_ITERATIONS_RATIO))

    @property
    def suffix(self) -> str:
        return f"_ep{self.epochs}_it{self.iterations}" + (f"_bs{self.batch_size}" if self.batch_size else "")

    def describe(self) -> str:
        batch = f", batch {self.batch_size}" if self.batch_size else ", batch size of the plans"
        return f"{_count(self.epochs, 'epoch')} × {_count(self.iterations, 'iteration')}{batch}"


@dataclass(frozen=True)
class FractionTrainerSpec:
    base: str
    percent: int
    budget: TrainingBudget | None = None  # None: the base trainer's own budget (nnU-Net's 1000 × 250)
    test_time_mirroring: bool = True

    def __post_init__(self) -> None:
        check_base(self.base)
        check_percent(self.percent)

    @property
    def name(self) -> str:
        budget = self.budget.suffix if self.budget else ""
        return f"{self.base}_frac{self.percent}{budget}{'' if self.test_time_mirroring else '_notta'}"


def check_percent(percent: object) -> int:
    """Fractions are whole percentages of the fold's training patients, 1..100."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ValueError(f"a data fraction is a whole percentage from 1 to 100, got {percent!r}")
    return percent


def check_base(base: str) -> str:
    if base not in FRACTION_BASES:
        raise ValueError(f"no data-fraction variant of trainer {base!r}; available: {', '.join(FRACTION_BASES)}")
    return base


def parse_fraction_trainer_name(name: str) -> FractionTrainerSpec | None:
    """The spec behind a data-fraction trainer name, or None if ``name`` is not one (never raises)."""
    match = _NAME.match(name)
    if match is None or match["base"] not in FRACTION_BASES or int(match["percent"]) > 100:
        return None
    budget = None
    if match["epochs"]:
        batch_size = int(match["batch_size"]) if match["batch_size"] else None
        budget = TrainingBudget(int(match["epochs"]), int(match["iterations"]), batch_size)
    return FractionTrainerSpec(match["base"], int(match["percent"]), budget, test_time_mirroring=not match["no_tta"])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"

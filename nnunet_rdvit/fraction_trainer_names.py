"""Names of the data-fraction trainers: ``<Base>_frac<P>[_ep<E>_it<I>[_bs<B>]][_notta]`` (a budget of epochs ×
iterations per epoch) and ``<Base>_frac<P>_min<M>[_it<I>][_bs<B>][_notta]`` (a budget of M minutes of training).

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

# Trainers a data-fraction variant exists for; nnUNetTrainer (nnU-Net's default U-Net) is the reference. Each is
# registered with @register_trainer(fraction_variants=True) or as an ablation, which checks it against this list.
FRACTION_BASES = ("RDViTTrainer", "RDViTTrainer_MoE", "ViTTrainer", "nnUNetTrainer", *ABLATIONS)
# Percentages defined as module attributes; any other integer percentage 1..100 is created on first lookup.
STANDARD_PERCENTS = (10, 25, 50, 100)
# nnU-Net validates 50 batches per 250 training iterations; budget trainers keep that ratio (at least one).
VAL_ITERATIONS_RATIO = 5

VALID_FORMS = "<Base>_frac<P>[_ep<E>_it<I>[_bs<B>]][_notta] or <Base>_frac<P>_min<M>[_it<I>][_bs<B>][_notta]"
_NAME = re.compile(r"^(?P<base>.+)_frac(?P<percent>[1-9]\d{0,2})"
                   r"(?:_ep(?P<epochs>[1-9]\d*)_it(?P<iterations>[1-9]\d*)(?:_bs(?P<batch_size>[1-9]\d*))?"
                   r"|_min(?P<minutes>[1-9]\d*)(?:_it(?P<minute_iterations>[1-9]\d*))?"
                   r"(?:_bs(?P<minute_batch_size>[1-9]\d*))?)?"
                   r"(?P<no_tta>_notta)?$")
_BUDGET_PART = re.compile(r"^(ep|it|min|bs)(.*)$")


@dataclass(frozen=True)
class TrainingBudget:
    """Epochs × iterations per epoch (and optionally the batch size) replacing nnU-Net's 1000 × 250."""

    epochs: int
    iterations: int
    batch_size: int | None = None  # None: the batch size of the plans

    def __post_init__(self) -> None:
        _check_positive("epochs", self.epochs)
        _check_positive("iterations", self.iterations)
        _check_optional_positive("batch size", self.batch_size)

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
class TimeBudget:
    """Minutes of training wall-clock replacing nnU-Net's 1000 epochs; optionally the iterations per epoch
    (training stops at the first epoch boundary after the budget, so shorter epochs overshoot less) and the
    batch size."""

    minutes: int
    iterations: int | None = None  # None: nnU-Net's 250 per epoch
    batch_size: int | None = None  # None: the batch size of the plans

    def __post_init__(self) -> None:
        _check_positive("minutes", self.minutes)
        _check_optional_positive("iterations", self.iterations)
        _check_optional_positive("batch size", self.batch_size)

    @property
    def seconds(self) -> float:
        return 60.0 * self.minutes

    @property
    def val_iterations(self) -> int | None:
        return None if self.iterations is None else max(1, math.ceil(self.iterations / VAL_ITERATIONS_RATIO))

    @property
    def suffix(self) -> str:
        return (f"_min{self.minutes}" + (f"_it{self.iterations}" if self.iterations else "")
                + (f"_bs{self.batch_size}" if self.batch_size else ""))

    def describe(self) -> str:
        epochs = f"epochs of {_count(self.iterations, 'iteration')}" if self.iterations else "epochs of 250 iterations"
        batch = f", batch {self.batch_size}" if self.batch_size else ", batch size of the plans"
        return f"{_count(self.minutes, 'minute')} of training ({epochs}){batch}"


@dataclass(frozen=True)
class FractionTrainerSpec:
    base: str
    percent: int
    budget: TrainingBudget | TimeBudget | None = None  # None: the base trainer's own budget (nnU-Net's 1000 × 250)
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
    budget: TrainingBudget | TimeBudget | None = None
    if match["epochs"]:
        budget = TrainingBudget(int(match["epochs"]), int(match["iterations"]), _int_or_none(match["batch_size"]))
    elif match["minutes"]:
        budget = TimeBudget(int(match["minutes"]), _int_or_none(match["minute_iterations"]),
                            _int_or_none(match["minute_batch_size"]))
    return FractionTrainerSpec(match["base"], int(match["percent"]), budget, test_time_mirroring=not match["no_tta"])


def invalid_fraction_name_reason(name: str) -> str | None:
    """Why ``name``, which looks like a data-fraction trainer (one of :data:`FRACTION_BASES` followed by
    ``_frac``, ``_min`` or ``_ep``), is not a valid one, naming the valid forms; None for every other name.

    Only our bases are claimed, so nnU-Net's stock variants (``nnUNetTrainer_5epochs``) and users' own trainers
    (``MyTrainer_frac10``) are never affected.
    """
    if parse_fraction_trainer_name(name) is not None:
        return None
    bases = [base for base in FRACTION_BASES if re.match(rf"^{re.escape(base)}_(frac|min|ep)", name)]
    if not bases:
        return None
    base = max(bases, key=len)
    rest = name[len(base) + 1:]
    example = f"e.g. {base}_frac100_min30 or {base}_frac10_ep50_it250_notta"
    return (f"invalid trainer name {name!r}: {_first_problem(base, rest)}; data-fraction trainers are named "
            f"{VALID_FORMS} (P a whole percentage 1-100; E, I, M, B positive integers), {example}")


def _first_problem(base: str, rest: str) -> str:
    """The first thing wrong in the part of a name after ``<base>_``."""
    parts = rest.split("_")
    if not parts[0].startswith("frac"):
        return f"a budget needs a data fraction first ({base}_frac100_{rest})"
    percent = parts[0][len("frac"):]
    if not (percent.isdigit() and not percent.startswith("0") and 1 <= int(percent) <= 100):
        return f"the data fraction must be a whole percentage from 1 to 100 (no leading zeros), got {percent!r}"
    seen: list[str] = []
    for part in parts[1:]:
        if part == "notta":
            seen.append(part)
            continue
        budget_part = _BUDGET_PART.match(part)
        if budget_part is None:
            return f"unknown part _{part}"
        key, value = budget_part.groups()
        if not (value.isdigit() and not value.startswith("0")):
            return f"_{key} needs a positive integer, got {value!r}"
        seen.append(key)
    if "ep" in seen and "min" in seen:
        return "a budget is either epochs × iterations (_ep<E>_it<I>) or minutes (_min<M>), not both"
    if "ep" in seen and "it" not in seen:
        return "_ep<E> needs the iterations per epoch too (_ep<E>_it<I>)"
    if ("it" in seen or "bs" in seen) and "ep" not in seen and "min" not in seen:
        return "_it<I> and _bs<B> are part of a budget: give _ep<E>_it<I> or _min<M> before them"
    if len(set(seen)) != len(seen):
        return "a part is given twice"
    return "its parts are out of order"


def _check_positive(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"budget {field} must be a positive integer, got {value!r}")


def _check_optional_positive(field: str, value: object) -> None:
    if value is not None:
        _check_positive(field, value)


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text else None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"

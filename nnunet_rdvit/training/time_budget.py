"""Training budgets (:class:`BudgetedTraining`), the training time counted per epoch, and time-budgeted training
(``<Base>_frac<P>_min<M>`` trainers).

**The budget** is one class attribute, ``budget``: a :class:`TrainingBudget` (epochs × iterations, optionally the
batch size) or a :class:`TimeBudget` (minutes), replacing nnU-Net's 1000 epochs × 250 iterations. The
``_ep<E>_it<I>`` / ``_min<M>`` trainer names set it (:mod:`nnunet_rdvit.fraction_trainer_names`), and so does any
subclass, ``RDViTTrainer_demo`` included: ``budget = TrainingBudget(10, 25)``.

**What counts.** The training time is the wall-clock of nnU-Net's epoch loop: training and validation
iterations and the per-epoch bookkeeping (logs, progress plot, checkpoints; counted at the next epoch start), not
start-up (data loaders, unpacking), time between an interruption and ``--c``, or the final validation. It is
logged per epoch (``training_seconds`` in nnU-Net's logger, with the
epoch's seconds and steps in the training log), so it travels in every checkpoint and a run resumed with
``--c`` continues with the budget that is left.

**With a time budget** (``budget = TimeBudget(M)``; set by the ``_min<M>`` trainer names):

* training ends at the first epoch boundary once the budget is spent; then nnU-Net's ``on_train_end``
  (``checkpoint_final.pth``) and its final validation run as usual;
* the learning-rate schedule is the trainer's own shape (nnU-Net's poly decay for the U-Net, warm-up + poly for
  the transformers) over the fraction of the budget spent, set at every epoch start, so it reaches 0 at the
  budget (:class:`~nnunet_rdvit.training.optim.BudgetLR`);
* ``checkpoint_latest.pth`` is written at the end of every epoch that crosses a multiple of
  ``latest_checkpoint_every_s`` (5 minutes) of training time — every epoch when epochs are longer — instead of
  nnU-Net's every 50 epochs, so an interruption loses at most about 5 minutes and one epoch;
* with snapshots on (``NNUNET_RDVIT_SNAPSHOT_MINUTES=K`` in the environment, or ``snapshot_every_minutes`` in a
  subclass), the end of every epoch that crosses a multiple of K minutes also writes
  ``checkpoint_at_<seconds>s.pth`` (seconds of training time), kept after training: nnU-Net's predictor loads
  one with ``checkpoint_name=`` / ``nnUNetv2_predict -chk``, which is how a learning curve evaluates them.

The clock is :func:`training_clock`, the one place this module reads the time (tests replace it).
"""

from __future__ import annotations

import math
import os
import time
from os.path import join
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

from nnunet_rdvit.fraction_trainer_names import TimeBudget, TrainingBudget
from nnunet_rdvit.training.optim import BudgetLR, WarmupPolyLR
from nnunet_rdvit.training.trainer_errors import TrainerSetupError, require_configuration

TRAINING_SECONDS_KEY = "training_seconds"
SNAPSHOT_ENV = "NNUNET_RDVIT_SNAPSHOT_MINUTES"
# A budgeted run's epoch count: a cap for nnU-Net's epoch loop, never reached (the budget ends the loop).
BUDGET_EPOCH_CAP = 1_000_000


def training_clock() -> float:
    """Seconds on a monotonic clock."""
    return time.monotonic()


def snapshot_name(training_seconds: float) -> str:
    return f"checkpoint_at_{round(training_seconds)}s.pth"


class _BudgetSpent(Exception):
    """Raised at an epoch start once the budget is spent; ends nnU-Net's epoch loop between two epochs."""


class BudgetedTraining:
    """Trains on ``budget`` instead of nnU-Net's default; None keeps nnU-Net's 1000 epochs × 250 iterations.

    The one way to set a training budget (the trainer names and ``RDViTTrainer_demo`` use it too). The validation
    iterations per epoch keep nnU-Net's ratio (:attr:`TrainingBudget.val_iterations`); a batch size goes into the
    plans before nnU-Net reads them, so the ``plans.json`` saved with the model shows it. A :class:`TimeBudget`
    needs :class:`TimedTraining`, which counts the time, in the bases. Put it before nnU-Net's trainer in the
    bases; keeps nnU-Net's exact ``__init__`` signature.
    """

    budget: ClassVar[TrainingBudget | TimeBudget | None] = None
    budget_seconds: ClassVar[float | None] = None  # derived from a TimeBudget, for TimedTraining

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if isinstance(cls.budget, TimeBudget) and not issubclass(cls, TimedTraining):
            raise TypeError(f"{cls.__name__}.budget is a time budget, which needs TimedTraining (it counts the time) "
                            f"first in the bases: class {cls.__name__}(TimedTraining, ...)")
        cls.budget_seconds = cls.budget.seconds if isinstance(cls.budget, TimeBudget) else None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        require_configuration(plans, configuration)
        budget = self.budget
        if budget is not None and budget.batch_size is not None:
            plans["configurations"][configuration]["batch_size"] = budget.batch_size
        super().__init__(plans, configuration, fold, dataset_json, device)
        if isinstance(budget, TrainingBudget):
            self.num_epochs = budget.epochs
        if budget is not None and budget.iterations is not None:
            self.num_iterations_per_epoch = budget.iterations
            self.num_val_iterations_per_epoch = budget.val_iterations


class TimedTraining(BudgetedTraining):
    """Counts the training time; with a :class:`TimeBudget`, trains for that long (see the module docstring).

    Put it before nnU-Net's trainer in the bases. Keeps nnU-Net's exact ``__init__`` signature.
    """

    latest_checkpoint_every_s: ClassVar[float] = 300.0
    snapshot_every_minutes: ClassVar[float | None] = None  # overridden by $NNUNET_RDVIT_SNAPSHOT_MINUTES
    training_seconds: float = 0.0  # training time counted so far (restored from checkpoints)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._clock_mark = 0.0  # when the time not yet counted began
        self.snapshot_every_s = None
        if self.budget_seconds is not None:
            self.num_epochs = BUDGET_EPOCH_CAP
            self.save_every = BUDGET_EPOCH_CAP  # checkpoint_latest is written by time instead (on_epoch_end)
            minutes = _snapshot_minutes(self.snapshot_every_minutes)
            self.snapshot_every_s = None if minutes is None else 60.0 * minutes

    def budget_progress(self) -> float:
        """Fraction of the budget spent before the current epoch (a method: nnU-Net's debug dump reads every
        attribute)."""
        return self.training_seconds / self.budget_seconds

    def configure_optimizers(self):
        optimizer, scheduler = super().configure_optimizers()
        if self.budget_seconds is None:
            return optimizer, scheduler
        return optimizer, _budget_schedule(type(self).__name__, optimizer, scheduler, self.budget_progress)

    def on_train_start(self) -> None:
        super().on_train_start()
        self._clock_mark = training_clock()

    def run_training(self) -> None:
        try:
            super().run_training()
        except _BudgetSpent:
            self.on_train_end()

    def on_epoch_start(self) -> None:
        self._count_time()  # the previous epoch's bookkeeping after on_epoch_end's count
        if self.budget_seconds is not None and self.training_seconds >= self.budget_seconds:
            self.print_to_log_file(
                f"Time budget of {self.budget_seconds:.0f} s spent: {self.training_seconds:.1f} s of training in "
                f"{_epochs(self.current_epoch)}. Training ends here.")
            raise _BudgetSpent
        super().on_epoch_start()

    def on_epoch_end(self) -> None:
        before = self.training_seconds
        seconds = self._count_time()
        self.logger.local_logger.my_fantastic_logging.setdefault(TRAINING_SECONDS_KEY, [])
        self.logger.log(TRAINING_SECONDS_KEY, self.training_seconds, self.current_epoch)
        steps = self.num_iterations_per_epoch
        budget = f" of the {self.budget_seconds:.0f} s budget" if self.budget_seconds is not None else ""
        self.print_to_log_file(f"Training time: {seconds:.2f} s for {steps} steps this epoch "
                               f"({steps / max(seconds, 1e-9):.2f} steps/s); {self.training_seconds:.1f} s{budget} "
                               f"after {_epochs(self.current_epoch + 1)}")
        super().on_epoch_end()  # nnU-Net: log, checkpoint_best, progress.png, current_epoch += 1
        if self.budget_seconds is not None:
            if _crossed(before, self.training_seconds, self.latest_checkpoint_every_s):
                self._save_after_epoch("checkpoint_latest.pth")
            if self.snapshot_every_s is not None and _crossed(before, self.training_seconds, self.snapshot_every_s):
                self._save_after_epoch(snapshot_name(self.training_seconds))

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        logged = self.logger.local_logger.my_fantastic_logging.get(TRAINING_SECONDS_KEY) or [0.0]
        self.training_seconds = float(logged[-1])

    def _count_time(self) -> float:
        """Adds the time since the last count to ``training_seconds``; returns it."""
        now = training_clock()
        seconds, self._clock_mark = now - self._clock_mark, now
        self.training_seconds = self._same_on_every_rank(self.training_seconds + seconds)
        return seconds

    def _save_after_epoch(self, name: str) -> None:
        """Save as of the epoch that just ended (``on_epoch_end`` has already counted it; nnU-Net's
        ``on_train_end`` steps back the same way)."""
        self.current_epoch -= 1
        try:
            self.save_checkpoint(join(self.output_folder, name))
        finally:
            self.current_epoch += 1

    def _same_on_every_rank(self, value: float) -> float:
        """Rank 0's value on every rank, so all DDP ranks stop after the same epoch and use the same rate."""
        if not self.is_ddp:
            return value
        shared = [value]
        dist.broadcast_object_list(shared, src=0)
        return float(shared[0])


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def _crossed(before: float, after: float, every: float) -> bool:
    """Whether (before, after] contains a multiple of ``every`` (every epoch if ``every`` ≤ 0)."""
    return every <= 0 or math.floor(after / every) > math.floor(before / every)


def _snapshot_minutes(default: float | None) -> float | None:
    text = os.environ.get(SNAPSHOT_ENV, "").strip()
    if not text:
        return default
    try:
        minutes = float(text)
    except ValueError:
        minutes = math.nan
    if not (math.isfinite(minutes) and minutes > 0):
        raise TrainerSetupError(f"{SNAPSHOT_ENV}={text!r} is not a positive number of minutes; set it to e.g. 5 "
                                f"(a snapshot checkpoint every 5 minutes of training) or unset it")
    return minutes


def _budget_schedule(trainer: str, optimizer: torch.optim.Optimizer, scheduler, progress) -> BudgetLR:
    """The trainer's own schedule shape, re-expressed over the budget."""
    if isinstance(scheduler, WarmupPolyLR):
        return BudgetLR(optimizer, scheduler.initial_lr, progress, scheduler.warmup_epochs / scheduler.num_epochs,
                        scheduler.exponent)
    if isinstance(scheduler, PolyLRScheduler):
        return BudgetLR(optimizer, scheduler.initial_lr, progress, 0.0, scheduler.exponent)
    raise TrainerSetupError(f"{trainer} uses a {type(scheduler).__name__} learning-rate schedule; time budgets "
                            f"re-express nnU-Net's PolyLRScheduler or nnunet-rdvit's WarmupPolyLR over the budget, "
                            f"so override configure_optimizers to return one of those, or use an _ep<E>_it<I> budget")

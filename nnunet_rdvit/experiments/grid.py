"""The experiment grid — trainers × data fractions × folds × configurations at one training budget — and
where nnU-Net puts each job's results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunet_rdvit.errors import UserError
from nnunet_rdvit.fraction_trainer_names import (FRACTION_BASES, FractionTrainerSpec, TimeBudget, TrainingBudget,
                                                 check_percent, parse_fraction_trainer_name)


@dataclass(frozen=True)
class Job:
    """One ``nnUNetv2_train`` call."""

    spec: FractionTrainerSpec
    configuration: str
    fold: int

    @property
    def trainer(self) -> str:
        return self.spec.name

    def label(self) -> str:
        return f"{self.trainer} {self.configuration} fold {self.fold}"


@dataclass(frozen=True)
class ExperimentGrid:
    dataset: str  # DatasetNNN_Name
    trainers: tuple[str, ...]  # base trainers (FRACTION_BASES)
    percents: tuple[int, ...]
    folds: tuple[int, ...]
    configurations: tuple[str, ...]
    budget: TrainingBudget | TimeBudget | None = None  # None: the trainers' own (nnU-Net's 1000 epochs × 250 iterations)
    plans: str = "nnUNetPlans"
    test_time_mirroring: bool = True

    def __post_init__(self) -> None:
        for field in ("trainers", "percents", "folds", "configurations"):
            values = getattr(self, field)
            if not values:
                raise UserError(f"the experiment grid needs at least one entry in {field}")
            if len(set(values)) != len(values):
                raise UserError(f"{field} lists a value twice: {', '.join(map(str, values))}")
        for trainer in self.trainers:
            if trainer not in FRACTION_BASES:
                hint = ""
                spec = parse_fraction_trainer_name(trainer)
                if spec is not None:
                    hint = f" (give the base trainer {spec.base} and the fraction with --fractions {spec.percent})"
                raise UserError(f"unknown trainer {trainer!r}{hint}; the grid takes base trainers with a "
                                f"data-fraction variant: {', '.join(FRACTION_BASES)}")
        for percent in self.percents:
            try:
                check_percent(percent)
            except ValueError as error:
                raise UserError(str(error)) from None
        if any(fold < 0 for fold in self.folds):
            raise UserError(f"folds must be 0 or more, got {', '.join(map(str, self.folds))}")

    def jobs(self) -> list[Job]:
        """Fold by fold, so one complete set of comparisons (every trainer and fraction) finishes first."""
        return [Job(FractionTrainerSpec(trainer, percent, self.budget, self.test_time_mirroring), configuration, fold)
                for fold in self.folds for configuration in self.configurations
                for percent in self.percents for trainer in self.trainers]

    def model_dir(self, results: Path, job: Job) -> Path:
        return results / self.dataset / f"{job.trainer}__{self.plans}__{job.configuration}"

    def fold_dir(self, results: Path, job: Job) -> Path:
        return self.model_dir(results, job) / f"fold_{job.fold}"

    def describe(self) -> str:
        budget = self.budget.describe() if self.budget else "the trainers' default budget (1000 epochs × 250 iterations)"
        budget += "" if self.test_time_mirroring else ", validation without test-time mirroring"
        return (f"{self.dataset}: {len(self.trainers)} trainer(s) × {len(self.percents)} fraction(s) × "
                f"{len(self.folds)} fold(s) × {len(self.configurations)} configuration(s) = {len(self.jobs())} "
                f"job(s); {budget}")

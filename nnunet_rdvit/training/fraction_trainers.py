"""Data-fraction (low-data) variants of every trainer registered with ``fraction_variants`` or as an ablation
(:mod:`nnunet_rdvit.training.registry`): the RD-ViT, RD-ViT+MoE, ViT and nnU-Net U-Net trainers and the RD-ViT
ablations (``RDViTTrainer_NoACT_frac100``, ...).

``RDViTTrainer_frac10`` trains on 10 % of the fold's training *patients* (see :mod:`nnunet_rdvit.data_fraction`
for the rule); the validation fold stays whole. ``..._ep<E>_it<I>[_bs<B>]`` variants also replace nnU-Net's
1000 epochs × 250 iterations (and optionally the plans' batch size), ``..._min<M>[_it<I>][_bs<B>]`` ones train for
M minutes instead (:mod:`nnunet_rdvit.training.time_budget`), ``..._notta`` ones infer without test-time
mirroring — see :mod:`nnunet_rdvit.fraction_trainer_names`. Each fold records what it trained on in
``training_subset.json``. Every variant, the U-Net's included, writes its checkpoints atomically and survives a
damaged one (:mod:`nnunet_rdvit.training.checkpoints`) and logs its training time per epoch.

The classes for the standard percentages (10, 25, 50, 100) are module attributes; every other valid name is
created on first attribute access (module ``__getattr__``), which is exactly how nnU-Net's ``-tr`` lookup and
its predictor ask for a trainer. A name that looks like one of ours but is invalid (``RDViTTrainer_frac0``,
``..._min0``) raises :class:`~nnunet_rdvit.training.trainer_errors.TrainerSetupError` naming the valid forms
instead of letting nnU-Net report a trainer it could not find.
"""

from __future__ import annotations

import functools
from os.path import join
from typing import ClassVar

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_rdvit.atomic import write_json_atomic
from nnunet_rdvit.data_fraction import select_training_subset
from nnunet_rdvit.dataset_conversion.metadata import load_case_metadata
from nnunet_rdvit.fraction_trainer_names import (FRACTION_BASES, STANDARD_PERCENTS, FractionTrainerSpec,
                                                 TimeBudget, invalid_fraction_name_reason,
                                                 parse_fraction_trainer_name)
from nnunet_rdvit.nnunet_folders import folder_variable
from nnunet_rdvit.training.checkpoints import CrashSafeCheckpoints
from nnunet_rdvit.training.registry import fraction_base_classes
from nnunet_rdvit.training.time_budget import TimedTraining
from nnunet_rdvit.training.trainer_errors import TrainerSetupError

SUBSET_FILE = "training_subset.json"


class DataFractionMixin(TimedTraining, CrashSafeCheckpoints):
    """Subsamples the fold's training patients in ``do_split`` and applies the spec's TTA; the spec's training
    budget is the class's ``budget`` (:class:`~nnunet_rdvit.training.time_budget.BudgetedTraining`).

    Put it first in the bases: ``class T(DataFractionMixin, SomeTrainer)``; ``spec`` says what to do.
    """

    spec: ClassVar[FractionTrainerSpec]

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """Training augmentation as nnU-Net sets it; without TTA, no mirror axes for inference (saved in checkpoints)."""
        configured = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if not self.spec.test_time_mirroring:
            self.inference_allowed_mirroring_axes = None
        return configured

    def do_split(self) -> tuple[list[str], list[str]]:
        """nnU-Net's split with this fold's training cases subsampled; called more than once, always the same."""
        train_keys, val_keys = super().do_split()
        subset = select_training_subset(train_keys, self.spec.percent, self.fold, self._case_metadata())
        self.print_to_log_file(
            f"Data fraction {subset.percent} %: training on {len(subset.patients)} of {subset.n_patients_available} "
            f"patients ({len(subset.cases)} of {len(set(train_keys))} cases); {len(val_keys)} validation cases "
            f"unchanged. Grouping: {subset.grouping}.")
        if self.local_rank == 0:
            record = {"trainer": type(self).__name__, "base_trainer": self.spec.base,
                      "budget": self._budget_record(), **subset.to_json()}
            write_json_atomic(join(self.output_folder, SUBSET_FILE), record)
        return list(subset.cases), val_keys

    def _case_metadata(self) -> dict[str, dict]:
        """``case_metadata.json`` beside the preprocessed data, else in the raw dataset folder, else none."""
        metadata = load_case_metadata(self.preprocessed_dataset_folder_base)
        raw = folder_variable("nnUNet_raw")
        if not metadata and raw is not None:
            metadata = load_case_metadata(raw / self.plans_manager.dataset_name)
        return metadata

    def _budget_record(self) -> dict:
        time_budget = isinstance(self.spec.budget, TimeBudget)
        return {
            "epochs": None if time_budget else self.num_epochs,
            "minutes": self.spec.budget.minutes if time_budget else None,
            "iterations_per_epoch": self.num_iterations_per_epoch,
            "val_iterations_per_epoch": self.num_val_iterations_per_epoch,
            "batch_size": self.configuration_manager.batch_size,
            "default": self.spec.budget is None,
            "test_time_mirroring": self.spec.test_time_mirroring,
        }


@functools.cache
def fraction_trainer(name: str) -> type[nnUNetTrainer] | None:
    """The trainer class named ``name`` (created once, then cached), or None if it is not a data-fraction name.

    Raises TrainerSetupError for a name that looks like one but is invalid (see
    :func:`~nnunet_rdvit.fraction_trainer_names.invalid_fraction_name_reason`).
    """
    spec = parse_fraction_trainer_name(name)
    if spec is None:
        reason = invalid_fraction_name_reason(name)
        if reason is not None:
            raise TrainerSetupError(reason)
        return None
    budget = f"; budget {spec.budget.describe()}" if spec.budget else ""
    budget += "" if spec.test_time_mirroring else "; inference without test-time mirroring"
    return type(name, (DataFractionMixin, fraction_base_classes()[spec.base]), {
        "spec": spec,
        "budget": spec.budget,
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"{spec.base} on {spec.percent} % of each fold's training patients{budget}.",
    })


STANDARD_FRACTION_TRAINERS: dict[str, type[nnUNetTrainer]] = {
    name: fraction_trainer(name)
    for name in (FractionTrainerSpec(base, percent).name for base in FRACTION_BASES for percent in STANDARD_PERCENTS)
}
globals().update(STANDARD_FRACTION_TRAINERS)


def __getattr__(name: str) -> type[nnUNetTrainer]:
    trainer = fraction_trainer(name)
    if trainer is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return trainer

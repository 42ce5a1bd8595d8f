"""In-process trainers on the tiny workspace, and a fake training clock, for the budget and checkpoint tests."""

from __future__ import annotations

import json

import pytest
import torch


class FakeClock:
    """Stands in for :func:`nnunet_rdvit.training.time_budget.training_clock`; time moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def use_workspace(workspace, results, monkeypatch: pytest.MonkeyPatch) -> None:
    """nnU-Net's folders and CPU-friendly workers in this process's environment (nnU-Net reads them lazily)."""
    monkeypatch.setenv("nnUNet_raw", str(workspace.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(workspace.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(results))
    for variable, value in {"nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1", "nnUNet_compile": "f"}.items():
        monkeypatch.setenv(variable, value)


def make_trainer(workspace, trainer: str | type, continue_training: bool = False):
    """``trainer`` (a data-fraction trainer name, or a class) on the tiny workspace's 2d fold 0, on the CPU,
    constructed as nnUNetv2_train does."""
    from nnunet_rdvit.training.fraction_trainers import fraction_trainer

    base = workspace.preprocessed / workspace.dataset
    plans = json.loads((base / "nnUNetPlans.json").read_text())
    plans["continue_training"] = continue_training
    dataset_json = json.loads((base / "dataset.json").read_text())
    trainer_class = fraction_trainer(trainer) if isinstance(trainer, str) else trainer
    return trainer_class(plans, "2d", 0, dataset_json, device=torch.device("cpu"))

"""Time budgets (``<Base>_frac<P>_min<M>``): names, invalid names through nnU-Net's lookup, the schedule over the
budget, and — on the tiny workspace with a fake clock — a run that stops at the budget and a resumed one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nnunet_rdvit.fraction_trainer_names import (VALID_FORMS, FractionTrainerSpec, TimeBudget,
                                                 invalid_fraction_name_reason, parse_fraction_trainer_name)
from nnunet_rdvit.training.optim import BudgetLR, WarmupPolyLR


@pytest.mark.parametrize("name, expected", [
    ("RDViTTrainer_frac100_min30", FractionTrainerSpec("RDViTTrainer", 100, TimeBudget(30))),
    ("nnUNetTrainer_frac100_min30", FractionTrainerSpec("nnUNetTrainer", 100, TimeBudget(30))),
    ("ViTTrainer_frac10_min5_it50_bs8_notta",
     FractionTrainerSpec("ViTTrainer", 10, TimeBudget(5, 50, 8), test_time_mirroring=False)),
    ("RDViTTrainer_NoACT_frac25_min120_bs4", FractionTrainerSpec("RDViTTrainer_NoACT", 25, TimeBudget(120, None, 4))),
])
def test_time_budget_names_round_trip(name: str, expected: FractionTrainerSpec) -> None:
    assert parse_fraction_trainer_name(name) == expected
    assert expected.name == name
    assert invalid_fraction_name_reason(name) is None


def test_time_budget_fields() -> None:
    assert TimeBudget(30).seconds == 1800 and TimeBudget(30).val_iterations is None
    assert TimeBudget(1, 12).val_iterations == 3
    assert TimeBudget(2, 50, 8).describe() == "2 minutes of training (epochs of 50 iterations), batch 8"
    for bad in ((0,), (-5,), (1.5,), (5, 0), (5, None, 0), (True,)):
        with pytest.raises(ValueError, match="positive integer"):
            TimeBudget(*bad)


@pytest.mark.parametrize("name, problem", [
    ("RDViTTrainer_frac0", "whole percentage from 1 to 100"),
    ("RDViTTrainer_frac150", "whole percentage from 1 to 100"),
    ("nnUNetTrainer_frac010", "whole percentage from 1 to 100"),
    ("RDViTTrainer_fracX", "whole percentage from 1 to 100"),
    ("RDViTTrainer_frac10_ep0_it0", "_ep needs a positive integer, got '0'"),
    ("RDViTTrainer_frac10_ep5_it0", "_it needs a positive integer, got '0'"),
    ("RDViTTrainer_frac10_ep5_it5_bs0", "_bs needs a positive integer, got '0'"),
    ("RDViTTrainer_frac10_bs0", "_bs needs a positive integer"),
    ("RDViTTrainer_frac10_bs4", "part of a budget"),
    ("RDViTTrainer_frac10_ep5", "needs the iterations per epoch too"),
    ("RDViTTrainer_frac10_min0", "_min needs a positive integer, got '0'"),
    ("RDViTTrainer_frac10_min-5", "_min needs a positive integer, got '-5'"),
    ("RDViTTrainer_frac10_minX", "_min needs a positive integer, got 'X'"),
    ("RDViTTrainer_frac10_min1.5", "_min needs a positive integer"),
    ("RDViTTrainer_frac10_ep5_it5_min30", "either epochs × iterations (_ep<E>_it<I>) or minutes (_min<M>)"),
    ("RDViTTrainer_frac10_min30_ep5_it5", "either epochs × iterations"),
    ("RDViTTrainer_frac10_min30_min30", "given twice"),
    ("RDViTTrainer_frac10_notta_min30", "out of order"),
    ("RDViTTrainer_frac10_min30_fast", "unknown part _fast"),
    ("ViTTrainer_min30", "needs a data fraction first (ViTTrainer_frac100_min30)"),
    ("RDViTTrainer_NoACT_frac10_min0", "_min needs a positive integer"),
])
def test_every_invalid_form_names_the_problem_and_the_valid_forms(name: str, problem: str) -> None:
    assert parse_fraction_trainer_name(name) is None
    reason = invalid_fraction_name_reason(name)
    assert reason is not None and problem in reason and VALID_FORMS in reason and name in reason


@pytest.mark.parametrize("name", ["nnUNetTrainer_5epochs", "nnUNetTrainerNoDA", "MyTrainer_frac10",
                                  "RDViTTrainer_tiny", "RDViTTrainer_MoE", "RDViTTrainer", "RDViTTrainerX_frac10"])
def test_other_trainers_names_are_never_claimed(name: str) -> None:
    assert invalid_fraction_name_reason(name) is None


def test_invalid_names_surface_through_nnunet_lookup_as_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """nnU-Net's ``-tr`` lookup (what nnUNetv2_train and the predictor call) stops at our message instead of its
    bare "could not find"; stock and valid names still resolve."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_rdvit.errors import UserError
    from nnunet_rdvit.training.trainer_errors import TrainerSetupError

    for name in ("RDViTTrainer_frac0", "RDViTTrainer_frac10_min0", "nnUNetTrainer_frac100_ep5_it5_min3"):
        with pytest.raises(TrainerSetupError) as raised:
            recursive_find_trainer_class_by_name(name)
        assert isinstance(raised.value, UserError) and isinstance(raised.value, SystemExit)
        assert VALID_FORMS in str(raised.value) and raised.value.code == f"error: {raised.value}"
    assert recursive_find_trainer_class_by_name("RDViTTrainer_frac100_min30").budget_seconds == 1800
    assert recursive_find_trainer_class_by_name("nnUNetTrainer_5epochs").__name__ == "nnUNetTrainer_5epochs"


def test_an_uncaught_setup_error_is_one_line_and_a_failing_exit_status(tmp_path: Path) -> None:
    """What a stock command shows: the interpreter prints SystemExit's code, no traceback."""
    import subprocess
    import sys

    script = ("from nnunet_rdvit.training.fraction_trainers import fraction_trainer; "
              "fraction_trainer('RDViTTrainer_frac150')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {invalid_fraction_name_reason('RDViTTrainer_frac150')}"]


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)


def test_budget_schedule_warms_up_then_decays_to_zero_at_the_budget() -> None:
    progress = [0.0]
    optimizer = _optimizer()
    schedule = BudgetLR(optimizer, 1e-3, lambda: progress[0], warmup_fraction=0.1)
    rates = {}
    for fraction in (0.0, 0.05, 0.1, 0.5, 0.9, 0.99, 1.0, 1.3):
        progress[0] = fraction
        schedule.step(12345)  # nnU-Net passes the epoch; the budget's schedule ignores it
        rates[fraction] = optimizer.param_groups[0]["lr"]
    assert rates[0.0] == pytest.approx(1e-4)  # warm-up starts at 0.1 × the rate, so epoch 0 learns
    assert rates[0.05] == pytest.approx(0.55e-3) and rates[0.1] == pytest.approx(1e-3)
    assert rates[0.1] > rates[0.5] > rates[0.9] > rates[0.99] > 0
    assert rates[1.0] == 0.0 and rates[1.3] == 0.0  # the end value, at the budget and after it


def test_budget_schedule_for_the_unet_is_nnunets_poly_over_the_budget() -> None:
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

    from nnunet_rdvit.training.time_budget import _budget_schedule

    progress = [0.0]
    optimizer = _optimizer()
    stock = PolyLRScheduler(_optimizer(), 1e-2, 1000)
    schedule = _budget_schedule("nnUNetTrainer_frac100_min30", optimizer, PolyLRScheduler(optimizer, 1e-2, 1000),
                                lambda: progress[0])
    for fraction in (0.0, 0.25, 0.5, 0.999, 1.0):
        progress[0] = fraction
        schedule.step()
        stock.step(fraction * 1000)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(stock.get_last_lr()[0])
    transformer = _budget_schedule("RDViTTrainer_frac100_min30", optimizer,
                                   WarmupPolyLR(optimizer, 3e-4, 1_000_000, 50_000), lambda: 0.0)
    assert transformer.warmup_fraction == pytest.approx(0.05) and transformer.initial_lr == 3e-4


def test_budget_schedule_refuses_a_schedule_it_cannot_re_express() -> None:
    from nnunet_rdvit.training.time_budget import _budget_schedule
    from nnunet_rdvit.training.trainer_errors import TrainerSetupError

    optimizer = _optimizer()
    with pytest.raises(TrainerSetupError, match="CosineAnnealingLR learning-rate schedule"):
        _budget_schedule("MyTrainer", optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10),
                         lambda: 0.0)


@pytest.mark.parametrize("value", ["0", "-5", "x", "nan"])
def test_bad_snapshot_interval_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from nnunet_rdvit.training.time_budget import SNAPSHOT_ENV, _snapshot_minutes
    from nnunet_rdvit.training.trainer_errors import TrainerSetupError

    monkeypatch.setenv(SNAPSHOT_ENV, value)
    with pytest.raises(TrainerSetupError, match="not a positive number of minutes"):
        _snapshot_minutes(None)
    monkeypatch.setenv(SNAPSHOT_ENV, "2.5")
    assert _snapshot_minutes(None) == 2.5
    monkeypatch.delenv(SNAPSHOT_ENV)
    assert _snapshot_minutes(7.0) == 7.0

"""Time-budgeted training on the tiny workspace with a fake clock (no real waiting): it stops at the first epoch
boundary after the budget, the learning rate reaches its end value there, periodic and snapshot checkpoints are
written by training time, and a resumed run continues with the budget that is left."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from budget_support import FakeClock, make_trainer, use_workspace
from nnunet_rdvit.training import time_budget
from nnunet_rdvit.training.optim import BudgetLR

# One minute of training, epochs of 2 iterations (plus 1 validation iteration), batch 2; each training step
# takes 10 s of fake time, so an epoch is 20 s and the budget is spent after 3 epochs.
NAME = "RDViTTrainer_frac100_min1_it2_bs2_notta"
STEP_SECONDS = 10.0


class Interrupted(Exception):
    pass


def _ticking(trainer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, stop_at: float | None = None) -> None:
    """Every training step advances the fake clock; at ``stop_at`` the run is interrupted mid-epoch."""
    step = trainer.train_step

    def timed_step(batch: dict) -> dict:
        clock.now += STEP_SECONDS
        if stop_at is not None and clock.now >= stop_at:
            raise Interrupted
        return step(batch)

    monkeypatch.setattr(trainer, "train_step", timed_step)


def _schedule_at(trainer, progress: float) -> float:
    schedule = trainer.lr_scheduler
    return BudgetLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), schedule.initial_lr,
                    lambda: progress, schedule.warmup_fraction, schedule.exponent).lr_at(progress)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time_budget, "training_clock", fake)
    monkeypatch.delenv(time_budget.SNAPSHOT_ENV, raising=False)
    return fake


def test_a_budgeted_run_stops_at_the_budget_with_the_schedule_at_its_end(
        tiny_workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    use_workspace(tiny_workspace, tmp_path, monkeypatch)
    monkeypatch.setenv(time_budget.SNAPSHOT_ENV, "0.5")  # a snapshot every 30 s of training
    trainer = make_trainer(tiny_workspace, NAME)
    assert trainer.budget_seconds == 60 and trainer.num_iterations_per_epoch == 2
    _ticking(trainer, clock, monkeypatch)
    trainer.run_training()

    fold = Path(trainer.output_folder)
    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 3  # 20 s, 40 s, 60 s: stopped at the first epoch boundary at the budget
    assert final["logging"]["training_seconds"] == [20.0, 40.0, 60.0]
    rates = final["logging"]["lrs"]
    assert rates[0] == pytest.approx(0.1 * trainer.initial_lr)  # warm-up start: epoch 0 learns
    assert rates == pytest.approx([_schedule_at(trainer, p) for p in (0.0, 1 / 3, 2 / 3)])
    assert rates[0] < rates[1] and rates[1] > rates[2] > 0
    assert trainer.lr_scheduler.lr_at(trainer.budget_progress()) == 0.0  # the end value, reached at the budget
    # Snapshots at the epochs crossing 30 s and 60 s, kept; checkpoint_latest removed by nnU-Net at the end.
    assert sorted(path.name for path in fold.glob("checkpoint_at_*")) == ["checkpoint_at_40s.pth",
                                                                          "checkpoint_at_60s.pth"]
    snapshot = torch.load(fold / "checkpoint_at_40s.pth", map_location="cpu", weights_only=False)
    assert snapshot["current_epoch"] == 2 and snapshot["logging"]["training_seconds"] == [20.0, 40.0]
    assert not (fold / "checkpoint_latest.pth").exists()
    log = "".join(path.read_text() for path in fold.glob("training_log_*.txt"))
    assert "Time budget of 60 s spent: 60.0 s of training in 3 epochs" in log
    assert "Training time: 20.00 s for 2 steps this epoch (0.10 steps/s); 40.0 s of the 60 s budget" in log


def test_a_resumed_run_continues_with_the_budget_that_is_left(
        tiny_workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    from nnunetv2.run.run_training import maybe_load_checkpoint

    use_workspace(tiny_workspace, tmp_path, monkeypatch)
    first = make_trainer(tiny_workspace, NAME)
    first.latest_checkpoint_every_s = 20.0  # checkpoint_latest after every 20 s of training: every epoch here
    _ticking(first, clock, monkeypatch, stop_at=clock.now + 50)  # interrupted in the third epoch
    with pytest.raises(Interrupted):
        first.run_training()
    fold = Path(first.output_folder)
    latest = torch.load(fold / "checkpoint_latest.pth", map_location="cpu", weights_only=False)
    assert latest["current_epoch"] == 2 and latest["logging"]["training_seconds"] == [20.0, 40.0]

    clock.now += 3600.0  # time between the runs does not count
    second = make_trainer(tiny_workspace, NAME, continue_training=True)
    maybe_load_checkpoint(second, continue_training=True, validation_only=False)  # what nnUNetv2_train --c does
    assert second.training_seconds == 40.0 and second.current_epoch == 2
    _ticking(second, clock, monkeypatch)
    second.run_training()
    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 3 and final["logging"]["training_seconds"] == [20.0, 40.0, 60.0]
    assert final["logging"]["lrs"][2] == pytest.approx(_schedule_at(second, 40 / 60))

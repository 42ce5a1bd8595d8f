"""Crash-safe checkpoints: atomic writes, a damaged checkpoint named or replaced by an intact one for ``--c``, and
a fault test — SIGKILL while nnUNetv2_train writes a checkpoint, then ``--c`` resumes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from budget_support import make_trainer, use_workspace
from nnunet_rdvit.training.trainer_errors import TrainerSetupError

REPO = Path(__file__).resolve().parents[1]
UNET = "nnUNetTrainer_frac100_ep2_it2_bs2_notta"  # nnU-Net's own trainer, as the project builds its variants


def _truncate(source: Path, target: Path) -> None:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])


def test_a_damaged_latest_checkpoint_falls_back_to_the_best_and_says_so(
        tiny_workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from nnunetv2.run.run_training import maybe_load_checkpoint

    use_workspace(tiny_workspace, tmp_path, monkeypatch)
    trainer = make_trainer(tiny_workspace, UNET)
    trainer.initialize()
    fold = Path(trainer.output_folder)
    trainer.save_checkpoint(str(fold / "checkpoint_best.pth"))
    _truncate(fold / "checkpoint_best.pth", fold / "checkpoint_latest.pth")  # what a kill used to leave
    capsys.readouterr()

    resumed = make_trainer(tiny_workspace, UNET, continue_training=True)
    maybe_load_checkpoint(resumed, continue_training=True, validation_only=False)
    out = capsys.readouterr().out
    assert f"{fold / 'checkpoint_latest.pth'} cannot be read" in out
    assert f"Continuing from the last intact checkpoint, {fold / 'checkpoint_best.pth'}" in out

    _truncate(fold / "checkpoint_latest.pth", fold / "checkpoint_best.pth")  # nothing intact left
    with pytest.raises(TrainerSetupError, match="no intact checkpoint_best.pth is left to continue from; move it"):
        maybe_load_checkpoint(make_trainer(tiny_workspace, UNET, continue_training=True), True, False)

    (fold / "checkpoint_final.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainerSetupError, match="checkpoint_final.pth cannot be read .*move it away or use another checkpoint"):
        maybe_load_checkpoint(make_trainer(tiny_workspace, UNET), continue_training=False, validation_only=True)


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_file(
        tiny_workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_workspace(tiny_workspace, tmp_path, monkeypatch)
    trainer = make_trainer(tiny_workspace, "RDViTTrainer_frac100_ep2_it2_bs2_notta")
    trainer.initialize()
    target = Path(trainer.output_folder) / "checkpoint_latest.pth"
    trainer.save_checkpoint(str(target))
    before = target.read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        real_save({"partial": True}, f)
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        trainer.save_checkpoint(str(target))
    assert target.read_bytes() == before
    assert sorted(path.name for path in target.parent.iterdir() if path.name.startswith(".")) == []


KILLED_WRITE = textwrap.dedent("""
    # nnUNetv2_train whose second write of checkpoint_latest is cut short: half the bytes, then SIGKILL.
    import io, os, signal, sys
    import torch
    from nnunetv2.run.run_training import run_training_entry
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    real_save, writes = torch.save, []

    def dying_save(obj, f, *args, **kwargs):
        if "checkpoint_latest" in str(f):
            writes.append(f)
            if len(writes) == 2:
                buffer = io.BytesIO()
                real_save(obj, buffer)
                with open(f, "wb") as out:
                    out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = dying_save
    start = nnUNetTrainer.on_train_start

    def on_train_start(self):
        start(self)
        self.save_every = 1  # checkpoint_latest after every epoch

    nnUNetTrainer.on_train_start = on_train_start
    sys.argv = ["nnUNetv2_train", *sys.argv[1:]]
    run_training_entry()
""")


def test_sigkill_during_a_checkpoint_write_then_continue(tiny_workspace, tmp_path: Path) -> None:
    trainer = "nnUNetTrainer_frac100_ep3_it2_bs2_notta"
    env = tiny_workspace.env()
    env["nnUNet_results"] = str(tmp_path)
    env["nnUNet_extTrainer"] = os.pathsep.join([str(REPO / "trainers"), env["nnUNet_extTrainer"]])
    args = [str(tiny_workspace.dataset_id), "2d", "0", "-tr", trainer, "-device", "cpu"]
    # cwd outside the checkout: `python -c` / `-m` put the working directory first on sys.path, and the source
    # tree is not the installed package (nnunet_rdvit.dataset_conversion exists only once installed)
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITE, *args], env=env, capture_output=True, text=True,
                            cwd=tmp_path)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    fold = tmp_path / tiny_workspace.dataset / f"{trainer}__nnUNetPlans__2d" / "fold_0"
    leftovers = [path.name for path in fold.iterdir() if path.name.startswith(".checkpoint_latest.pth.")]
    assert len(leftovers) == 1  # the cut-short write went to a temporary file...
    latest = torch.load(fold / "checkpoint_latest.pth", map_location="cpu", weights_only=False)
    assert latest["current_epoch"] == 1  # ...and the final name still holds epoch 0's complete checkpoint

    resumed = subprocess.run([sys.executable, "-m", "nnunetv2.run.run_training", *args, "--c"], env=env,
                             capture_output=True, text=True, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "Epoch 1" in resumed.stdout and "Epoch 0\n" not in resumed.stdout
    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 3 and len(final["logging"]["train_losses"]) == 3
    assert (fold / "validation" / "summary.json").is_file()
    assert not [path for path in fold.iterdir() if path.name.startswith(".checkpoint")]  # leftover removed

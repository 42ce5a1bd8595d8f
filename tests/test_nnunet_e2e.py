"""End to end through the stock nnU-Net commands: plan → train → predict → evaluate → find best configuration.

Training uses a user's own subclasses of our trainers from an ``nnUNet_extTrainer`` folder
(tests/ext_trainers), which also checks that such subclasses work.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from nnunet_rdvit.stock_commands import run_stock_command


def test_training_writes_nnunet_outputs_and_rdvit_curves(tiny_trained_model) -> None:
    fold = tiny_trained_model / "fold_0"
    for name in ("checkpoint_final.pth", "progress.png", "aux_progress.png", "validation/summary.json"):
        assert (fold / name).is_file(), name
    plans = json.loads((tiny_trained_model / "plans.json").read_text())
    assert plans["configurations"]["2d"]["rdvit_token_size"] == [4, 4]
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == "RDViTTrainer_tiny"
    logged = checkpoint["logging"]
    assert len(logged["ponder_time"]) == 2 and all(1 <= v <= 3 for v in logged["ponder_time"])
    assert checkpoint["init_args"]["configuration"] == "2d"
    log_text = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "ponder_time" in log_text and "token size (4, 4)" in log_text


def test_predict_and_evaluate_with_stock_commands(tiny_workspace, tiny_trained_model, tmp_path) -> None:
    images = tiny_workspace.raw / tiny_workspace.dataset / "imagesTs"
    labels = tiny_workspace.raw / tiny_workspace.dataset / "labelsTs"
    out = tmp_path / "pred"
    run_stock_command("nnUNetv2_predict", ["-i", images, "-o", out, "-d", tiny_workspace.dataset_id, "-c", "2d",
                                           "-tr", "RDViTTrainer_tiny", "-f", "0", "-device", "cpu", "-npp", "1",
                                           "-nps", "1"], tiny_workspace.env(), tmp_path / "predict.log", echo=False)
    for image in sorted(images.glob("*.nii.gz")):
        prediction = nib.load(out / image.name.replace("_0000", ""))
        source = nib.load(image)
        assert prediction.shape == source.shape
        assert np.allclose(prediction.affine, source.affine, atol=1e-4)
        assert set(np.unique(np.asarray(prediction.dataobj))) <= {0, 1, 2, 3}
    run_stock_command("nnUNetv2_evaluate_folder", [labels, out, "-djfile", tiny_trained_model / "dataset.json",
                                                   "-pfile", tiny_trained_model / "plans.json", "-np", "1"],
                      tiny_workspace.env(), tmp_path / "evaluate.log", echo=False)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2", "3"}
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0


def test_find_best_configuration_accepts_our_trainer(tiny_workspace, tiny_trained_model, tmp_path) -> None:
    run_stock_command("nnUNetv2_find_best_configuration", [tiny_workspace.dataset_id, "-c", "2d",
                                                           "-tr", "RDViTTrainer_tiny", "-f", "0", "-np", "1"],
                      tiny_workspace.env(), tmp_path / "find_best.log", echo=False)
    inference = tiny_workspace.results / tiny_workspace.dataset / "inference_instructions.txt"
    assert "RDViTTrainer_tiny" in inference.read_text()


@pytest.mark.parametrize("trainer", ["RDViTTrainer_MoE_tiny", "ViTTrainer_tiny"])
def test_moe_and_vit_trainers_train_3d_with_the_stock_command(tiny_workspace, trainer, tmp_path) -> None:
    run_stock_command("nnUNetv2_train", [tiny_workspace.dataset_id, "3d_fullres", "0", "-tr", trainer,
                                         "-device", "cpu", "--disable_checkpointing"],
                      tiny_workspace.env(), tmp_path / "train.log", echo=False)
    fold = tiny_workspace.model_folder(trainer, "3d_fullres") / "fold_0"
    assert (fold / "validation" / "summary.json").is_file()
    log_text = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    if "MoE" in trainer:
        assert "balance_loss" in log_text and "expert_load" in log_text
        assert (fold / "aux_progress.png").is_file()
    else:
        assert "ponder_time" not in log_text

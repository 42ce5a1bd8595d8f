"""benchmarks/learning_curves.py: resumable training commands with snapshots, each snapshot scored on the whole
validation fold (and a test folder) with nnU-Net's predictor and metric, the table and figure, clear bad input.

The end-to-end test trains in-process with a fake clock (no real waiting): one minute of fake training, a snapshot
every 30 s; the script then finds the run finished, skips its training and evaluates the snapshots.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest

from budget_support import FakeClock, make_trainer, use_workspace
from script_support import import_benchmark, run_main
from nnunet_rdvit.errors import UserError

REPO = Path(__file__).resolve().parents[1]
# Epochs of 2 steps of 10 fake seconds: 20, 40, 60 s; snapshots at the epochs crossing 30 and 60 s.
BASE, BUDGET = "RDViTTrainer", ["--minutes", "1", "--iterations", "2", "--batch-size", "2", "--disable_tta"]
MODEL = "RDViTTrainer_frac100_min1_it2_bs2_notta"
STEP_SECONDS = 10.0
GRID_DATASET = "Dataset998_Curves"


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch):
    return import_benchmark(monkeypatch, "learning_curves")


def _train_with_snapshots(workspace, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The budget trainer on the fake clock, then nnU-Net's final validation, as ``nnUNetv2_train`` runs them."""
    from nnunet_rdvit.training import time_budget

    clock = FakeClock()
    monkeypatch.setattr(time_budget, "training_clock", clock)
    monkeypatch.setenv(time_budget.SNAPSHOT_ENV, "0.5")
    trainer = make_trainer(workspace, MODEL)
    step = trainer.train_step

    def timed_step(batch: dict) -> dict:
        clock.now += STEP_SECONDS
        return step(batch)

    monkeypatch.setattr(trainer, "train_step", timed_step)
    trainer.run_training()
    trainer.perform_actual_validation(False)
    monkeypatch.delenv(time_budget.SNAPSHOT_ENV)
    return Path(trainer.output_folder)


def _nnunet_mean_dice(model_dir: Path, labels: Path, predictions: Path) -> float:
    """nnU-Net's compute_metrics_on_folder on a folder of predictions, called directly."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset_json = json.loads((model_dir / "dataset.json").read_text())
    labels_manager = PlansManager(str(model_dir / "plans.json")).get_label_manager(dataset_json)
    plans = PlansManager(str(model_dir / "plans.json"))
    metrics = compute_metrics_on_folder(str(labels), str(predictions), None, plans.image_reader_writer_class(),
                                        dataset_json["file_ending"], labels_manager.foreground_labels, None,
                                        num_processes=1)
    return metrics["foreground_mean"]["Dice"]


def test_snapshots_are_scored_on_the_whole_fold_and_a_rerun_skips_them(
        tiny_workspace, script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    from nnunet_rdvit.experiments import learning_curve

    results, out = tmp_path / "results", tmp_path / "curves"
    use_workspace(tiny_workspace, results, monkeypatch)
    monkeypatch.setenv("nnUNet_extTrainer", str(REPO / "trainers"))  # the stock predict finds the budget trainer
    fold = _train_with_snapshots(tiny_workspace, monkeypatch)
    assert sorted(p.name for p in fold.glob("checkpoint_at_*")) == ["checkpoint_at_40s.pth", "checkpoint_at_60s.pth"]
    dataset = tiny_workspace.raw / tiny_workspace.dataset
    argv = ["-d", str(tiny_workspace.dataset_id), "-c", "2d", "-f", "0", "-tr", BASE, *BUDGET,
            "--snapshot-minutes", "0.5", "-device", "cpu", "--test-images", str(dataset / "imagesTs"),
            "--test-labels", str(dataset / "labelsTs"), "-o", str(out)]

    code, printed, errors = run_main(script, argv, capsys)
    assert code == 0, errors
    assert "1 finished (skipped), 0 to continue (--c), 0 to start" in printed  # the training stage: nothing to do
    assert "checkpoint_at_60s.pth: the same epoch as checkpoint_final.pth, left out" in printed
    table = json.loads((out / "learning_curves.json").read_text())
    points = table["points"]
    assert [(p["split"], p["checkpoint"]) for p in points] == [
        ("validation", "checkpoint_at_40s.pth"), ("test", "checkpoint_at_40s.pth"),
        ("validation", "checkpoint_final.pth"), ("test", "checkpoint_final.pth")]
    structures = ["RV", "MYO", "LV", "mean"]
    for point in points:
        assert point["model"] == MODEL and point["trainer"] == BASE
        assert (point["iterations_per_epoch"], point["batch_size"]) == (2, 2)
        assert list(point["dice"]) == structures
        assert all(0.0 <= dice <= 1.0 for dice in point["dice"].values())
        assert point["ponder_time"] >= 1.0  # RD-ViT's ACT: at least one loop per token
    by_checkpoint = {(p["checkpoint"], p["split"]): p for p in points}
    snapshot, final = by_checkpoint[("checkpoint_at_40s.pth", "validation")], by_checkpoint[("checkpoint_final.pth",
                                                                                                "validation")]
    assert (snapshot["training_seconds"], snapshot["epochs"], snapshot["steps"]) == (40.0, 2, 4)
    assert (final["training_seconds"], final["epochs"], final["steps"]) == (60.0, 3, 6)

    # The whole validation fold, predicted by nnU-Net from the snapshot and scored by nnU-Net's metric.
    split = json.loads((tiny_workspace.preprocessed / tiny_workspace.dataset / "splits_final.json").read_text())[0]
    predictions = out / "predictions" / MODEL / "checkpoint_at_40s" / "validation"
    assert sorted(p.name for p in predictions.glob("*.nii.gz")) == sorted(f"{c}.nii.gz" for c in split["val"])
    assert snapshot["cases"] == len(split["val"])
    gt = tiny_workspace.preprocessed / tiny_workspace.dataset / "gt_segmentations"
    assert snapshot["dice"]["mean"] == pytest.approx(_nnunet_mean_dice(fold.parent, gt, predictions))
    test_summary = out / "predictions" / MODEL / "checkpoint_final" / "test" / "summary.json"
    assert by_checkpoint[("checkpoint_final.pth", "test")]["dice"]["mean"] == pytest.approx(
        json.loads(test_summary.read_text())["foreground_mean"]["Dice"])  # the final checkpoint, predicted
    assert by_checkpoint[("checkpoint_final.pth", "test")]["cases"] == len(list((dataset / "labelsTs").iterdir()))
    # checkpoint_final's validation is nnU-Net's own final validation.
    nnunet_final = json.loads((fold / "validation" / "summary.json").read_text())["foreground_mean"]["Dice"]
    assert final["dice"]["mean"] == pytest.approx(nnunet_final)

    with open(out / "learning_curves.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(points) * len(structures)
    assert {(r["checkpoint"], r["split"], r["structure"]) for r in rows} == {
        (p["checkpoint"], p["split"], s) for p in points for s in structures}
    markdown = (out / "learning_curves.md").read_text()
    assert markdown.count(f"| {BASE} | checkpoint_") == len(points)
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| RDViTTrainer | checkpoint_at_40s.pth | 40 | 2 | 4 | 2 |" in printed  # the table is printed too

    predicted: list[list[str]] = []

    def record_prediction(name: str, args: list, *rest, **kwargs) -> None:
        predicted.append([str(arg) for arg in args])
        raise UserError("stopped before predicting")

    monkeypatch.setattr(learning_curve, "run_stock_command", record_prediction)
    code, printed, errors = run_main(script, argv, capsys)
    assert code == 0 and not predicted, errors
    assert printed.count("already evaluated, skipped") == 2
    assert json.loads((out / "learning_curves.json").read_text())["points"] == points

    # A snapshot rewritten since (a run started over) is evaluated again; its old predictions are not reused.
    snapshot_file = fold / "checkpoint_at_40s.pth"
    os.utime(snapshot_file, ns=(snapshot_file.stat().st_atime_ns, snapshot_file.stat().st_mtime_ns + 10**9))
    code, printed, errors = run_main(script, argv, capsys)
    assert code == 2 and "error: stopped before predicting" in errors
    assert predicted and predicted[0][predicted[0].index("-chk") + 1] == "checkpoint_at_40s.pth"
    assert not list(predictions.glob("*.nii.gz"))


@pytest.fixture
def grid_folders(nnunet_folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A preprocessed dataset as far as the command checks it before training, and empty raw and results."""
    folders = nnunet_folders
    dataset = folders["nnUNet_preprocessed"] / GRID_DATASET
    (dataset / "nnUNetPlans_2d").mkdir(parents=True)
    (dataset / "nnUNetPlans.json").write_text(json.dumps({"configurations": {
        "2d": {"data_identifier": "nnUNetPlans_2d"}}}))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return folders


def test_dry_run_continues_interrupted_trainings_with_snapshots_on(
        script, grid_folders: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    interrupted = (grid_folders["nnUNet_results"] / GRID_DATASET
                   / "RDViTTrainer_frac100_min30_bs8_notta__nnUNetPlans__2d" / "fold_0")
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint_latest.pth").write_bytes(b"")
    code, printed, errors = run_main(script, ["-d", "998", "-tr", "RDViTTrainer", "nnUNetTrainer", "--minutes", "30",
                                           "--batch-size", "8", "--disable_tta", "-device", "cpu", "--dry-run"],
                                  capsys)
    assert code == 0, errors
    commands = printed.strip().splitlines()
    assert len(commands) == 2 and all("NNUNET_RDVIT_SNAPSHOT_MINUTES=5 " in line for line in commands)
    assert commands[0].endswith(f"nnUNetv2_train {GRID_DATASET} 2d 0 -tr RDViTTrainer_frac100_min30_bs8_notta "
                                f"-device cpu --c")
    assert commands[1].endswith("-tr nnUNetTrainer_frac100_min30_bs8_notta -device cpu")
    assert "1 to continue (--c), 1 to start" in errors


@pytest.mark.parametrize("argv, message", [
    (["-tr", "NoSuchTrainer"], "unknown trainer 'NoSuchTrainer'"),
    (["-tr", "RDViTTrainer_frac100_min30"], "give the base trainer RDViTTrainer"),
    (["--minutes", "0"], "--minutes: expected a positive integer (whole minutes of training"),
    (["--minutes", "-5"], "whole minutes of training, as in the trainer names'"),
    (["--snapshot-minutes", "0"], "--snapshot-minutes: expected a finite number > 0 (minutes of training between"),
    (["--snapshot-minutes", "x"], "minutes of training between two points of the curve"),
    (["--snapshot-minutes", "30"], "leaves no point before the end of the 30-minute budget"),
    (["-d", "555"], "dataset 555 is not in nnUNet_preprocessed"),
    (["-c", "3d_fullres"], "configuration '3d_fullres' is not in nnUNetPlans.json"),
    (["-f", "7"], "fold 7 is not in the split"),
    (["--test-images", "."], "give --test-images and --test-labels together"),
])
def test_bad_input_is_one_clear_line_and_exit_2(script, grid_folders: dict[str, Path], capsys: pytest.CaptureFixture,
                                                argv: list[str], message: str) -> None:
    defaults = {"-d": "998", "--minutes": "30"}
    given = dict(zip(argv[::2], argv[1::2]))
    full = [item for key, value in {**defaults, **given}.items() for item in (key, value)]
    code, printed, errors = run_main(script, [*full, "--dry-run", "-device", "cpu"], capsys)
    last = errors.strip().splitlines()[-1]  # argparse prints its usage above
    assert code == 2 and last.startswith("learning_curves.py: error: ") and message in last, errors
    assert "Traceback" not in errors
    assert not printed


def test_missing_nnunet_variable_is_named(script, grid_folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("nnUNet_raw")
    code, _, errors = run_main(script, ["-d", "998", "--minutes", "30", "--dry-run"], capsys)
    assert code == 2 and errors.strip() == ("learning_curves.py: error: nnUNet_raw is not set: export "
                                            "nnUNet_raw=/path/to/nnUNet_raw (nnU-Net's folder variables must be set "
                                            "as for nnUNetv2_train)")


def test_a_checkpoint_without_training_time_is_refused(tmp_path: Path) -> None:
    import torch

    from nnunet_rdvit.experiments.learning_curve import read_checkpoint_log

    path = tmp_path / "checkpoint_final.pth"
    torch.save({"current_epoch": 3, "logging": {"lrs": [0.1, 0.1, 0.1]}}, path)
    with pytest.raises(UserError, match="no logged training time"):
        read_checkpoint_log(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        read_checkpoint_log(path)
    torch.save({"current_epoch": 2, "logging": {"training_seconds": [20.0, 40.0], "ponder_time": [2.5, 1.5]}}, path)
    log = read_checkpoint_log(path)
    assert (log.epochs, log.training_seconds, log.ponder_time) == (2, 40.0, 1.5)
    torch.save({"current_epoch": 1, "logging": {"training_seconds": [20.0]}}, path)
    assert math.isnan(read_checkpoint_log(path).ponder_time)  # a model without ACT has none


def test_validation_images_are_linked_not_copied_and_missing_ones_named(tmp_path: Path) -> None:
    from nnunet_rdvit.experiments.learning_curve import link_images

    images = tmp_path / "imagesTr"
    images.mkdir()
    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "b_0001.nii.gz", "c_0000.nii.gz"):
        (images / name).write_bytes(b"image")
    dataset_json = {"file_ending": ".nii.gz", "channel_names": {"0": "cine", "1": "other"}}
    target = tmp_path / "out" / "inputs"
    (tmp_path / "out" / ".inputs.killed").mkdir(parents=True)  # left by a run killed while linking
    link_images(["a", "b"], images, dataset_json, target)
    assert sorted(p.name for p in target.iterdir()) == ["a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz",
                                                        "b_0001.nii.gz"]
    assert all(p.is_symlink() and p.resolve().parent == images.resolve() for p in target.iterdir())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["inputs"]
    link_images(["b"], images, dataset_json, target)  # rebuilt: exactly the cases asked for
    assert sorted(p.name for p in target.iterdir()) == ["b_0000.nii.gz", "b_0001.nii.gz"]
    with pytest.raises(UserError, match=r"1 validation image\(s\) missing from .*c_0001.nii.gz"):
        link_images(["c"], images, dataset_json, target)
    assert sorted(p.name for p in images.iterdir()) == ["a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz",
                                                        "b_0001.nii.gz", "c_0000.nii.gz"]  # inputs untouched

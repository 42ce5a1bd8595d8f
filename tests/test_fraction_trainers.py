"""Data-fraction trainers: names, nnU-Net's ``-tr`` lookup, ``do_split`` subsampling, budgets, real-data smoke test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from nnunet_rdvit.data_fraction import select_training_subset
from nnunet_rdvit.fraction_trainer_names import (FRACTION_BASES, STANDARD_PERCENTS, FractionTrainerSpec,
                                                 TrainingBudget, parse_fraction_trainer_name)

REAL_ACDC = Path(__file__).resolve().parents[2] / "shared/data/acdc"


@pytest.mark.parametrize("name, expected", [
    ("RDViTTrainer_frac10", FractionTrainerSpec("RDViTTrainer", 10)),
    ("RDViTTrainer_MoE_frac25", FractionTrainerSpec("RDViTTrainer_MoE", 25)),
    ("nnUNetTrainer_frac7_ep5_it20", FractionTrainerSpec("nnUNetTrainer", 7, TrainingBudget(5, 20))),
    ("ViTTrainer_frac100_ep1_it3_bs4_notta",
     FractionTrainerSpec("ViTTrainer", 100, TrainingBudget(1, 3, 4), test_time_mirroring=False)),
    ("ViTTrainer_frac50_notta", FractionTrainerSpec("ViTTrainer", 50, None, test_time_mirroring=False)),
])
def test_names_round_trip(name: str, expected: FractionTrainerSpec) -> None:
    assert parse_fraction_trainer_name(name) == expected
    assert expected.name == name


@pytest.mark.parametrize("name", ["RDViTTrainer", "RDViTTrainer_frac0", "RDViTTrainer_frac101", "RDViTTrainer_frac010",
                                  "MyTrainer_frac10", "RDViTTrainer_frac10_ep5", "RDViTTrainer_frac10_ep0_it5",
                                  "RDViTTrainer_frac10_bs4", "RDViTTrainer_frac10_notta_ep1_it1", "nnUNetTrainer_5epochs"])
def test_other_names_are_not_fraction_trainers(name: str) -> None:
    assert parse_fraction_trainer_name(name) is None


def test_budget_validation_and_val_iterations() -> None:
    assert TrainingBudget(2, 250).val_iterations == 50  # nnU-Net's ratio
    assert TrainingBudget(2, 3).val_iterations == 1
    assert TrainingBudget(1, 3, 4).describe() == "1 epoch × 3 iterations, batch 4"
    for bad in ((0, 5), (5, -1), (5, 5, 0), (1.5, 2)):
        with pytest.raises(ValueError):
            TrainingBudget(*bad)


def test_nnunet_lookup_finds_every_variant() -> None:
    """Through nnU-Net's own ``-tr`` lookup, as installed: standard attributes and names created on demand."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_rdvit.training import RDViTTrainer_MoE
    from nnunet_rdvit.training.fraction_trainers import STANDARD_FRACTION_TRAINERS

    assert len(STANDARD_FRACTION_TRAINERS) == len(FRACTION_BASES) * len(STANDARD_PERCENTS)
    for name in ("RDViTTrainer_frac10", "nnUNetTrainer_frac50", "RDViTTrainer_MoE_frac3_ep2_it4_bs2_notta"):
        trainer = recursive_find_trainer_class_by_name(name)
        assert trainer.__name__ == name and issubclass(trainer, nnUNetTrainer)
        assert recursive_find_trainer_class_by_name(name) is trainer  # one class per name, so pickling works
    assert issubclass(recursive_find_trainer_class_by_name("RDViTTrainer_MoE_frac25"), RDViTTrainer_MoE)
    assert recursive_find_trainer_class_by_name("nnUNetTrainer_5epochs").__name__ == "nnUNetTrainer_5epochs"


def _trainer(workspace, name: str, fold: int | str = 0):
    from nnunet_rdvit.training.fraction_trainers import fraction_trainer

    base = workspace.preprocessed / workspace.dataset
    plans = json.loads((base / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    dataset_json = json.loads((base / "dataset.json").read_text())
    return fraction_trainer(name)(plans, "2d", fold, dataset_json, device=torch.device("cpu"))


def test_do_split_subsamples_training_patients_only(tiny_workspace, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Constructed in-process on the tiny dataset: the split nnU-Net sees, the record beside the results."""
    monkeypatch.setenv("nnUNet_raw", str(tiny_workspace.raw))  # nnU-Net reads these when it needs them
    monkeypatch.setenv("nnUNet_preprocessed", str(tiny_workspace.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    splits = json.loads((tiny_workspace.preprocessed / tiny_workspace.dataset / "splits_final.json").read_text())
    # The workspace was converted without $nnUNet_preprocessed, so the metadata is only in the raw dataset folder,
    # where the trainer looks second.
    assert not (tiny_workspace.preprocessed / tiny_workspace.dataset / "case_metadata.json").exists()
    metadata = json.loads((tiny_workspace.raw / tiny_workspace.dataset / "case_metadata.json").read_text())

    trainer = _trainer(tiny_workspace, "ViTTrainer_frac50_ep2_it3_bs1_notta", fold=1)
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (2, 3, 1)
    assert trainer.configuration_manager.batch_size == 1 and trainer.plans_manager.plans["configurations"]["2d"][
        "batch_size"] == 1
    train, val = trainer.do_split()
    assert trainer.do_split() == (train, val)  # nnU-Net calls it again before the final validation
    assert val == splits[1]["val"]
    assert train == list(select_training_subset(splits[1]["train"], 50, 1, metadata).cases)
    record = json.loads((Path(trainer.output_folder) / "training_subset.json").read_text())
    assert record["cases"] == train and record["trainer"] == "ViTTrainer_frac50_ep2_it3_bs1_notta"
    assert record["budget"] == {"epochs": 2, "minutes": None, "iterations_per_epoch": 3, "val_iterations_per_epoch": 1,
                                "batch_size": 1, "default": False, "test_time_mirroring": False}
    assert record["grouping"].startswith("patients and groups from case_metadata.json")
    trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    assert trainer.inference_allowed_mirroring_axes is None

    default = _trainer(tiny_workspace, "nnUNetTrainer_frac100")
    assert (default.num_epochs, default.num_iterations_per_epoch) == (1000, 250)
    assert default.do_split()[0] == splits[0]["train"]
    default.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    assert default.inference_allowed_mirroring_axes == (0, 1)


@pytest.mark.slow
def test_real_acdc_training_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Ten real ACDC patients (two per group; Bernard et al., IEEE TMI 2018): convert, plan, and train one fold of
    RDViTTrainer_frac50 for 2 iterations through the experiment runner and the stock nnUNetv2_train."""
    if not (REAL_ACDC / "training").is_dir():
        pytest.skip(f"real ACDC data not found at {REAL_ACDC}")
    from nnunet_rdvit import cli
    from nnunet_rdvit.dataset_conversion import convert_acdc
    from nnunet_rdvit.stock_commands import nnunet_environment, run_stock_command

    source = tmp_path / "acdc" / "training"
    source.mkdir(parents=True)
    for first in (1, 21, 41, 61, 81):  # groups come in blocks of 20
        for number in (first, first + 1):
            (source / f"patient{number:03d}").symlink_to(REAL_ACDC / "training" / f"patient{number:03d}")
    folders = {name: tmp_path / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for name, folder in folders.items():
        monkeypatch.setenv(name, str(folder))
    convert_acdc(tmp_path / "acdc", folders["nnUNet_raw"], 27, progress=False)
    env = nnunet_environment(*folders.values(), nnUNet_n_proc_DA="1")
    run_stock_command("nnUNetv2_plan_and_preprocess", ["-d", "27", "-c", "2d", "-np", "1"], env,
                      tmp_path / "plan.log", echo=None)

    output = tmp_path / "experiment"
    assert cli.main(["experiment", "run", "-d", "27", "-tr", "RDViTTrainer", "--fractions", "50", "-f", "0",
                     "--epochs", "1", "--iterations", "2", "--batch-size", "2", "--disable_tta", "-device", "cpu",
                     "-o", str(output), "--no-hd95"]) == 0
    assert "| RDViTTrainer | 50 % | 2d | 1 |" in capsys.readouterr().out
    fold = folders["nnUNet_results"] / "Dataset027_ACDC" / "RDViTTrainer_frac50_ep1_it2_bs2_notta__nnUNetPlans__2d" / \
        "fold_0"
    subset = json.loads((fold / "training_subset.json").read_text())
    assert subset["n_patients_available"] == 8 and subset["n_patients"] == 5  # at least one per group
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == 4  # the whole validation fold: 2 patients × ED/ES
    shutil.rmtree(folders["nnUNet_preprocessed"])  # ~100 MB

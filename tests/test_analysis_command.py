"""``nnunet-rdvit analyze -m MODEL_DIR`` end to end on tiny trained models, and its bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from inference_support import run_cli
from nnunet_rdvit.analysis.network import recurrent_network
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.networks import ViT

pytestmark = pytest.mark.usefixtures("inference_env")


@pytest.fixture
def nnunet_env(tiny_workspace, monkeypatch: pytest.MonkeyPatch):
    """nnU-Net's folders of the tiny workspace, so the fold's validation split and raw files are found."""
    monkeypatch.setenv("nnUNet_raw", str(tiny_workspace.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(tiny_workspace.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(tiny_workspace.results))
    return tiny_workspace


def test_analyze_validation_cases_of_an_act_model(nnunet_env, tiny_trained_model, tmp_path, capsys) -> None:
    out = tmp_path / "report"
    code, stdout, _ = run_cli(capsys, "analyze", "-m", tiny_trained_model, "--loops", "1", "2", "3", "4",
                              "--max-cases", "2", "-device", "cpu", "-o", out)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["files"]) == {"report.json", "report.md", "depth_extrapolation.png", "halting.png",
                                    "halting_examples.png", "training_dynamics.png"}
    assert all((out / name).is_file() for name in report["files"])
    assert report["model"]["fold"] == 0 and report["model"]["trained_loops"] == 3 and report["model"]["act"]
    splits = json.loads((nnunet_env.preprocessed / nnunet_env.dataset / "splits_final.json").read_text())
    assert report["cases"]["names"] == sorted(splits[0]["val"])[:2]

    depth = report["depth_extrapolation"]
    assert [row["loops"] for row in depth["rows"]] == [1, 2, 3, 4]  # one row per loop count
    assert [row["trained"] for row in depth["rows"]] == [False, False, True, False]
    assert depth["settings"] == ["act_on", "act_off"]
    for row in depth["rows"]:
        for setting in ("act_on", "act_off"):
            assert set(row[setting]["dice"]) == {"RV", "MYO", "LV", "mean"}
        assert row["act_off"]["loops_per_token"]["mean"] == row["loops"]  # halting off: every token runs n
        assert row["act_on"]["loops_per_token"]["mean"] <= row["loops"]
    assert len(depth["per_case"]) == 2 * 4 * 2

    halting = report["halting"]
    assert halting["applicable"] and len(halting["per_case"]) == 2
    assert "all structures: boundary vs interior" in halting["summary"]["tests"]
    assert "RV: boundary vs interior" in halting["summary"]["tests"]
    assert 1.0 <= halting["summary"]["categories"]["background"]["mean"] <= 3.0
    assert not report["experts"]["applicable"] and "Mixture of Experts" in report["experts"]["reason"]

    dynamics = report["training_dynamics"]
    assert dynamics["available"] and dynamics["source"] == "checkpoint_final.pth" and dynamics["epochs"] == 2
    assert len(dynamics["series"]["ponder_time"]) == 2 and len(dynamics["series"]["train_losses"]) == 2

    markdown = (out / "report.md").read_text()
    assert "| **3** (T) |" in markdown and "## ACT halting" in markdown and "Not applicable" in markdown
    assert "depth (ACT on): mean Dice" in stdout and "halting:" in stdout and f"Report in {out}" in stdout


def test_analyze_moe_model_on_a_labelled_folder_writes_into_the_fold(nnunet_env, tiny_moe_model, tmp_path,
                                                                      capsys) -> None:
    model = tmp_path / nnunet_env.dataset / tiny_moe_model.name
    shutil.copytree(tiny_moe_model, model)  # the default report folder lies inside the model folder
    raw = nnunet_env.raw / nnunet_env.dataset
    code, stdout, _ = run_cli(capsys, "analyze", "-m", model, "--images", raw / "imagesTr", "--labels",
                              raw / "labelsTr",
                              "--max-cases", "1", "--loops", "3", "--no-act-off", "--permutations", "20",
                              "-device", "cpu")
    assert code == 0
    out = model / "fold_0" / "analysis"
    report = json.loads((out / "report.json").read_text())
    assert (out / "experts.png").is_file() and report["cases"]["source"].startswith(str(raw / "imagesTr"))
    assert [row["loops"] for row in report["depth_extrapolation"]["rows"]] == [3]
    assert report["depth_extrapolation"]["settings"] == ["act_on"]
    experts = report["experts"]
    assert experts["applicable"] and experts["experts"] == 4
    everything, structures = experts["specialisation"]["all labels"], experts["specialisation"]["structures only"]
    assert everything["labels"] == ["background", "RV", "MYO", "LV"] and structures["labels"] == ["RV", "MYO", "LV"]
    assert torch.tensor(everything["matrix"]).shape == (4, 4) and torch.tensor(structures["matrix"]).shape == (4, 3)
    assert 0.0 <= everything["normalised_mutual_information"] <= 1.0
    assert everything["shuffled_mutual_information_bits"]["permutations"] == 20
    assert 1 / 21 <= everything["p_value"] <= 1.0
    assert len(report["training_dynamics"]["series"]["expert_load"]) == 2
    assert "experts (structures only): normalised MI" in stdout


def test_analyze_refuses_networks_without_loops() -> None:
    vit = ViT(1, 4, (32, 32), (16, 16), embed_dim=16, depth=1, num_heads=2)
    with pytest.raises(UserError, match=r"the network of ViTTrainer \(ViT\) has no recurrent loop"):
        recurrent_network(vit, "ViTTrainer")
    with pytest.raises(UserError, match=r"nnUNetTrainer \(Conv2d\) has no recurrent loop"):
        recurrent_network(torch.nn.Conv2d(1, 4, 3), "nnUNetTrainer")


def _labelled_folder_missing_a_label(tiny_workspace, tmp: Path) -> list[str]:
    raw = tiny_workspace.raw / tiny_workspace.dataset
    images, labels = tmp / "images", tmp / "labels"
    images.mkdir()
    labels.mkdir()
    for name in ("patient001_frame01", "patient001_frame14"):
        shutil.copy(raw / "imagesTr" / f"{name}_0000.nii.gz", images)
    shutil.copy(raw / "labelsTr" / "patient001_frame01.nii.gz", labels)
    return ["--images", str(images), "--labels", str(labels)]


def _labelled_folder_with_a_truncated_image(tiny_workspace, tmp: Path) -> list[str]:
    """Two labelled cases; the first image is cut to two thirds (nnU-Net's reader would still return a volume)."""
    raw = tiny_workspace.raw / tiny_workspace.dataset
    images, labels = tmp / "images", tmp / "labels"
    images.mkdir(exist_ok=True)
    labels.mkdir(exist_ok=True)
    for name in ("patient001_frame01", "patient001_frame14"):
        shutil.copy(raw / "imagesTr" / f"{name}_0000.nii.gz", images)
        shutil.copy(raw / "labelsTr" / f"{name}.nii.gz", labels)
    damaged = images / "patient001_frame01_0000.nii.gz"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size * 2 // 3])
    return ["--images", str(images), "--labels", str(labels)]


@pytest.mark.parametrize("case, message", [
    ("missing model folder", "model folder {tmp}/nowhere does not exist"),
    ("fold without checkpoint", "fold(s) 3 have no checkpoint_final.pth in"),
    ("labels folder missing a case", "1 case(s) incomplete — patient001_frame14: no label patient001_frame14.nii.gz"),
    ("images without labels", "--images and --labels go together"),
    ("no nnUNet_preprocessed", "nnUNet_preprocessed is not set"),
    ("loops below one", "argument --loops: expected a positive integer, got 0"),
    ("too many loops", "--loops 100000000: at most 30 loops (10 × the trained T = 3); each loop count is a full "
                       "sliding-window prediction of every case"),
    ("too many permutations", "argument --permutations: expected an integer from 0 to 100000"),
    ("tile step too small", "argument -step_size: a tile step of 0.001 is below 0.1"),
    ("truncated image", "case patient001_frame01: patient001_frame01_0000.nii.gz is truncated (the gzip stream ends "
                        "early); copy or export the file again ({tmp}/images/patient001_frame01_0000.nii.gz)"),
    ("images folder is a file", "--images folder {tmp}/images/patient001_frame01_0000.nii.gz is a file, not a folder; "
                                "pass a folder"),
])
def test_bad_inputs_exit_2_with_one_clear_line(case, message, nnunet_env, tiny_trained_model, tmp_path, capsys,
                                               monkeypatch) -> None:
    out = tmp_path / "report"
    args = {"missing model folder": [tmp_path / "nowhere"],
            "fold without checkpoint": [tiny_trained_model, "-f", "3"],
            "labels folder missing a case": lambda: [tiny_trained_model,
                                                     *_labelled_folder_missing_a_label(nnunet_env, tmp_path)],
            "images without labels": [tiny_trained_model, "--images", tmp_path],
            "no nnUNet_preprocessed": [tiny_trained_model],
            "loops below one": [tiny_trained_model, "--loops", "0"],
            "too many loops": [tiny_trained_model, "--loops", "3", "100000000"],
            "too many permutations": [tiny_trained_model, "--permutations", "1000000000"],
            "tile step too small": [tiny_trained_model, "-step_size", "0.001"],
            "truncated image": lambda: [tiny_trained_model,
                                        *_labelled_folder_with_a_truncated_image(nnunet_env, tmp_path)],
            "images folder is a file": lambda: [tiny_trained_model, "--images",
                                                _labelled_folder_with_a_truncated_image(nnunet_env, tmp_path)[1] +
                                                "/patient001_frame01_0000.nii.gz", "--labels", tmp_path / "labels"],
            }[case]
    args = args() if callable(args) else args
    if case == "no nnUNet_preprocessed":
        monkeypatch.delenv("nnUNet_preprocessed")
    if case in ("loops below one", "too many permutations", "tile step too small"):  # argparse's own error
        with pytest.raises(SystemExit) as exit_info:
            run_cli(capsys, "analyze", "-m", *args, "-o", out)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
        return
    code, _, err = run_cli(capsys, "analyze", "-m", *args, "-device", "cpu", "-o", out)
    assert code == 2 and err.startswith("nnunet-rdvit analyze: error: ") and len(err.strip().splitlines()) == 1
    assert message.format(tmp=tmp_path) in err
    assert not out.exists()


@pytest.mark.parametrize("where", ["under a file", "inside the images folder", "on a virtual file system"])
def test_output_folder_that_cannot_or_must_not_be_written(where, nnunet_env, tiny_trained_model, tmp_path,
                                                          capsys) -> None:
    cases = _labelled_folder_with_a_truncated_image(nnunet_env, tmp_path)
    shutil.copy(nnunet_env.raw / nnunet_env.dataset / "imagesTr" / "patient001_frame01_0000.nii.gz",
                tmp_path / "images")  # intact again: the output is what is wrong
    (tmp_path / "notes.txt").write_text("in the way")
    out, message = {
        "under a file": (tmp_path / "notes.txt" / "report", f"cannot create the output folder "
                         f"{tmp_path / 'notes.txt' / 'report'}: {tmp_path / 'notes.txt'} is a file, not a folder; "
                         f"pass another -o"),
        "inside the images folder": (tmp_path / "images" / "report", f"the output folder {tmp_path / 'images' / 'report'} "
                                     f"is inside the input folder {tmp_path / 'images'}; pass a -o folder outside "
                                     f"every input (outputs are never written into inputs)"),
        "on a virtual file system": (Path("/proc/nnunet-rdvit-test-report"), "cannot write to the output folder "
                                     "/proc/nnunet-rdvit-test-report ("),
    }[where]
    before = sorted(p.name for p in (tmp_path / "images").iterdir())
    code, _, err = run_cli(capsys, "analyze", "-m", tiny_trained_model, *cases, "--loops", "3", "-device", "cpu",
                           "-o", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"nnunet-rdvit analyze: error: {message}")
    assert not out.exists() and sorted(p.name for p in (tmp_path / "images").iterdir()) == before


def test_help_renders(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        run_cli(capsys, "analyze", "--help")
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "MODEL_DIR" in out and "--loops" in out and "--no-act-off" in out

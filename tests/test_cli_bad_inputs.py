"""Hostile inputs to convert-acdc, demo, experiment and classify: one kind of bad input per test case.

Each must end with exit status 2 and one line ``nnunet-rdvit CMD: error: …`` naming the problem (argparse
puts its usage lines before it), with no traceback, nothing created where outputs would go and every input
untouched. Nothing here trains: every refusal fires before data generation, planning or training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nnunet_rdvit.cli import main

PROC = Path("/proc/self")  # a folder no one can create sub-folders in, not even root
needs_proc = pytest.mark.skipif(not PROC.is_dir(), reason="needs Linux's /proc")
TINY_VIT = ["--arch", "vit_baseline_tiny_patch16_224", "--arch-arg", "img_size=32", "--arch-arg", "patch_size=8",
            "--arch-arg", "embed_dim=32", "--arch-arg", "num_heads=2"]
RUN = ["--epochs", "1", "--batch-size", "4", "--workers", "0", "-device", "cpu", "--disable_progress_bar"]
GRID = ["-d", "901", "-tr", "RDViTTrainer", "--fractions", "100", "-f", "0", "--no-hd95"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test in its own folder, with nnU-Net's folder variables unset unless it sets them."""
    monkeypatch.chdir(tmp_path)
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_n_proc_DA"):
        monkeypatch.delenv(variable, raising=False)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (0, 0)
            for p in sorted(root.rglob("*"))}


def fails(capsys: pytest.CaptureFixture, argv: list[object], *expected: str, root: Path | None = None) -> str:
    """Runs the CLI in-process; asserts the refusal (see the module docstring) and that nothing under ``root``
    (default: the working folder) was created, changed or removed. Returns the error line."""
    root = Path.cwd() if root is None else root
    before = _tree(root)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own refusal
        code = stop.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    assert lines and lines[-1].startswith(f"nnunet-rdvit {argv[0]}") and ": error: " in lines[-1], err
    assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), err  # only argparse's usage before it
    for text in expected:
        assert text in lines[-1], lines[-1]
    assert _tree(root) == before
    return lines[-1]


def _a_file(name: str = "a_file") -> Path:
    path = Path.cwd() / name
    path.write_text("not a folder\n")
    return path


@pytest.fixture(scope="module")
def pristine_acdc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nnunet_rdvit.synthetic_acdc import generate_synthetic_acdc

    return generate_synthetic_acdc(tmp_path_factory.mktemp("acdc"), 5, seed=0, shape=(16, 16, 2))


@pytest.fixture
def acdc(pristine_acdc: Path) -> Path:
    return Path(shutil.copytree(pristine_acdc, Path.cwd() / "acdc"))


@pytest.fixture
def images() -> Path:
    """ImageNet layout: two classes of four 32×32 PNGs in train/ and one each in val/."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 1)):
        for name in ("blue", "red"):
            folder = Path.cwd() / "images" / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return Path.cwd() / "images"


@pytest.fixture
def checkpoint() -> Path:
    """A ``classify train`` checkpoint of an untrained tiny ViT (not recurrent): enough for eval's checks."""
    from nnunet_rdvit.classification.checkpoint import save_checkpoint
    from nnunet_rdvit.classification.registry import create_classifier

    kwargs = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "num_heads": 2, "num_classes": 2}
    model = create_classifier("vit_baseline_tiny_patch16_224", kwargs)
    path = Path.cwd() / "run" / "last.pt"
    save_checkpoint(path, {"model_name": "vit_baseline_tiny_patch16_224", "model_kwargs": kwargs,
                           "class_names": ["blue", "red"], "model": model.state_dict()})
    return path


@pytest.fixture
def preprocessed(monkeypatch: pytest.MonkeyPatch) -> Path:
    """nnU-Net folders with a planned (but not trained) Dataset901_Fake, set in the environment."""
    dataset = Path.cwd() / "nnUNet_preprocessed" / "Dataset901_Fake"
    (dataset / "nnUNetPlans_2d").mkdir(parents=True)
    (dataset / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"2d": {
        "data_identifier": "nnUNetPlans_2d"}}}))
    for variable, folder in (("nnUNet_preprocessed", "nnUNet_preprocessed"), ("nnUNet_results", "nnUNet_results"),
                             ("nnUNet_raw", "nnUNet_raw")):
        (Path.cwd() / folder).mkdir(exist_ok=True)
        monkeypatch.setenv(variable, str(Path.cwd() / folder))
    return dataset


# --- argument values: refused while parsing -------------------------------------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["demo", "--seed", "-1"], "expected a non-negative integer, got -1"),
    (["demo", "--train-patients", "100000"], "expected an integer from 5 to 100"),
    (["demo", "--train-patients", "3"], "at least 5 for nnU-Net's 5-fold split"),
    (["demo", "--test-patients", "0"], "expected an integer from 1 to 50"),
    (["demo", "--train-patients", "ten"], "got 'ten'"),
    (["convert-acdc", "--dataset-id", "1000", "acdc"], "expected an integer from 1 to 999"),
    (["experiment", "run", *GRID, "--epochs", "0", "--iterations", "5"], "expected a positive integer, got 0"),
    (["experiment", "aggregate", "-d", "901", "-f", "-1"], "expected a non-negative integer, got -1"),
    (["classify", "train", "--data", ".", "-o", "out", "--lr", "nan"], "expected a finite number > 0, got 'nan'"),
    (["classify", "train", "--data", ".", "-o", "out", "--lr", "inf"], "expected a finite number > 0, got 'inf'"),
    (["classify", "train", "--data", ".", "-o", "out", "--lr", "-0.001"], "expected a finite number > 0"),
    (["classify", "train", "--data", ".", "-o", "out", "--weight-decay", "nan"], "expected a finite number ≥ 0"),
    (["classify", "train", "--data", ".", "-o", "out", "--smoothing", "1.5"], "expected a finite number in [0, 1]"),
    (["classify", "train", "--data", ".", "-o", "out", "--min-scale", "0"], "in (0, 1]"),
    (["classify", "train", "--data", ".", "-o", "out", "--workers", "-1"], "expected a non-negative integer"),
    (["classify", "eval", "--loops", "0", "--checkpoint", "x", "--data", "."], "expected a positive integer, got 0"),
    (["classify", "models", "--img-size", "0"], "expected a positive integer, got 0"),
])
def test_out_of_range_values_are_refused_while_parsing(argv: list[str], expected: str, capsys) -> None:
    fails(capsys, argv, expected)


# --- paths of the wrong kind ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["convert-acdc", "{file}", "--nnunet-raw", "raw"],
    ["classify", "train", "--data", "{file}", "-o", "out"],
    ["classify", "eval", "--checkpoint", "{file}", "--data", "{file}"],
])
def test_an_input_folder_that_is_a_file_is_named_as_such(command: list[str], capsys) -> None:
    line = fails(capsys, [part.format(file=_a_file()) for part in command], "a_file is a file, not a folder")
    assert "does not exist" not in line


def test_an_input_file_that_is_a_folder_is_named_as_such(capsys) -> None:
    Path("run").mkdir()
    line = fails(capsys, ["classify", "eval", "--checkpoint", "run", "--data", "."],
                 "run is a folder, not a regular file")
    assert "does not exist" not in line


def test_a_missing_input_says_missing(capsys) -> None:
    fails(capsys, ["convert-acdc", "nowhere", "--nnunet-raw", "raw"], "nowhere does not exist")


@pytest.mark.parametrize("command", [
    ["convert-acdc", "{acdc}", "--nnunet-raw", "{out}"],
    ["demo", "-o", "{out}"],
    ["experiment", "run", *GRID, "-o", "{out}"],
    ["experiment", "aggregate", *GRID, "-o", "{out}"],
    ["classify", "train", "--data", "{acdc}", "-o", "{out}"],
    ["classify", "eval", "--checkpoint", "{file}", "--data", "{acdc}", "-o", "{out}"],
])
@pytest.mark.parametrize("where", ["under a file", pytest.param("under /proc", marks=needs_proc)])
def test_an_output_folder_that_cannot_be_created(command: list[str], where: str, capsys) -> None:
    blocker = _a_file()
    out = blocker / "out" if where == "under a file" else PROC / "out"
    Path("acdc").mkdir()
    argv = [part.format(acdc="acdc", out=out, file=blocker) for part in command]
    expected = "a_file is a file, not a folder" if where == "under a file" else "cannot be created"
    fails(capsys, argv, str(out), expected, "choose a folder you can write to")


# --- convert-acdc -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (None, "set the nnUNet_raw environment variable"),
    ("{file}", "a_file is a file, not a folder; set nnUNet_raw to a folder you can write to"),
    pytest.param("/proc/self/raw", "cannot be created", marks=needs_proc),
])
def test_convert_acdc_needs_a_usable_nnunet_raw(value: str | None, expected: str, acdc: Path, monkeypatch,
                                                capsys) -> None:
    if value is not None:
        monkeypatch.setenv("nnUNet_raw", value.format(file=_a_file()))
    fails(capsys, ["convert-acdc", acdc, "--disable_progress_bar"], expected)


def test_convert_acdc_checks_nnunet_preprocessed_before_writing_anything(acdc: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("nnUNet_preprocessed", str(_a_file()))
    fails(capsys, ["convert-acdc", acdc, "--nnunet-raw", "raw", "--disable_progress_bar"],
          "nnUNet_preprocessed", "a_file is a file, not a folder")
    assert not Path("raw").exists()


@pytest.mark.parametrize("subset", ["training", "testing"])
def test_convert_acdc_names_a_subset_entry_that_is_not_a_folder(subset: str, acdc: Path, capsys) -> None:
    shutil.rmtree(acdc / subset, ignore_errors=True)
    (acdc / subset).write_text("x")  # a testing/ file would otherwise be skipped without a word
    fails(capsys, ["convert-acdc", acdc, "--nnunet-raw", "raw", "--disable_progress_bar"],
          f"acdc/{subset} is a file; the ACDC {subset}/ entry must be a folder")


@pytest.mark.parametrize("entry, expected", [
    ("Info.cfg", "patient001: Info.cfg is a folder, not a text file"),
    ("patient001_frame01.nii.gz", "patient001_frame01.nii.gz is a folder, not a NIfTI file"),
])
def test_convert_acdc_names_patient_files_of_the_wrong_kind(entry: str, expected: str, acdc: Path, capsys) -> None:
    """The converter lists every bad case, one per line under the error line, and writes nothing."""
    target = acdc / "training" / "patient001" / entry
    target.unlink()
    target.mkdir()
    assert main(["convert-acdc", str(acdc), "--nnunet-raw", "raw", "--disable_progress_bar"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnunet-rdvit convert-acdc: error: ") and "Traceback" not in err
    assert expected in err and "is missing" not in err
    assert not Path("raw").exists()


# --- demo: every check fires before data generation -------------------------------------------------------

@pytest.mark.parametrize("setting, expected", [
    ({"-tr": "NoSuchTrainer"}, "nnU-Net finds no trainer named 'NoSuchTrainer'"),
    ({"nnUNet_n_proc_DA": "four"}, "nnUNet_n_proc_DA='four' is not a whole number"),
    ({"-device": "cuda"}, "torch sees no CUDA GPU"),
])
def test_demo_refuses_before_generating_data(setting: dict[str, str], expected: str, monkeypatch, capsys) -> None:
    argv = ["demo", "-o", "demo_out"]
    for key, value in setting.items():
        if key.startswith("-"):
            argv += [key, value]
        else:
            monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fails(capsys, argv, expected)
    assert not Path("demo_out").exists()


def test_demo_plans_with_one_worker_when_training_uses_none(monkeypatch, capsys) -> None:
    """README's CPU advice nnUNet_n_proc_DA=0 is for training; nnU-Net's planner needs >= 1."""
    from nnunet_rdvit import demo
    from nnunet_rdvit.errors import UserError

    calls: dict[str, dict[str, str]] = {}

    def stop_after_planning(name: str, args, env, log_file, **kwargs) -> None:
        calls[name] = dict(env)
        raise UserError("stopped after planning by the test")

    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    monkeypatch.setattr(demo, "run_stock_command", stop_after_planning)
    assert main(["demo", "-o", "demo_out", "--train-patients", "5", "--test-patients", "1", "-tr", "nnUNetTrainer",
                 "-device", "cpu"]) == 2
    assert "stopped after planning" in capsys.readouterr().err
    assert calls["nnUNetv2_plan_and_preprocess"]["nnUNet_n_proc_DA"] == "1"


# --- experiment -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variable, value, expected", [
    ("nnUNet_preprocessed", None, "nnUNet_preprocessed is not set"),
    ("nnUNet_preprocessed", "{file}", "a_file is a file, not a folder; point nnUNet_preprocessed to the existing"),
    ("nnUNet_results", "{file}", "a_file is a file, not a folder; point nnUNet_results to a folder you can write to"),
])
def test_experiment_needs_usable_nnunet_folders(variable: str, value: str | None, expected: str,
                                                preprocessed: Path, monkeypatch, capsys) -> None:
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value.format(file=_a_file()))
    fails(capsys, ["experiment", "run", *GRID, "--dry-run"], expected)


@pytest.mark.parametrize("damaged, content, expected", [
    ("nnUNetPlans.json", "{\"configurations\": ", "nnUNetPlans.json is not a readable JSON file"),
    ("nnUNetPlans.json", "[]", "nnUNetPlans.json has no 'configurations'"),
    ("splits_final.json", "[{", "splits_final.json is not a readable JSON file"),
])
def test_experiment_names_a_damaged_nnunet_file(damaged: str, content: str, expected: str, preprocessed: Path,
                                                capsys) -> None:
    (preprocessed / damaged).write_text(content)
    fails(capsys, ["experiment", "run", *GRID, "--dry-run"], expected)


@pytest.mark.parametrize("inside", ["nnUNet_preprocessed/Dataset901_Fake", "nnUNet_results/Dataset901_Fake/report"])
def test_experiment_output_inside_the_nnunet_dataset_folders_is_refused(inside: str, preprocessed: Path,
                                                                        capsys) -> None:
    Path("nnUNet_results/Dataset901_Fake").mkdir()
    fails(capsys, ["experiment", "aggregate", *GRID, "-o", inside], "the input folder",
          "pass a -o/--output folder outside every input")


def test_experiment_test_set_needs_nnunet_raw_before_training(preprocessed: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("nnUNet_raw")
    fails(capsys, ["experiment", "run", *GRID, "--test", "--dry-run"], "nnUNet_raw is not set")


def test_aggregate_with_nothing_finished_says_so_and_writes_nothing(preprocessed: Path, capsys) -> None:
    fails(capsys, ["experiment", "aggregate", *GRID, "-o", "report"], "none of the grid's 1 job(s) has finished",
          "RDViTTrainer_frac100__nnUNetPlans__2d", "experiment run")
    assert not Path("report").exists()


def test_run_where_every_job_failed_reports_the_failures_not_an_empty_summary(preprocessed: Path, monkeypatch,
                                                                             capsys) -> None:
    from nnunet_rdvit.experiments import runner

    monkeypatch.setattr(runner, "run_jobs", lambda grid, planned, *rest: [(job.job, "exit code 1") for job in planned])
    assert main(["experiment", "run", *GRID, "-device", "cpu", "-o", "report"]) == 2
    err = capsys.readouterr().err
    assert "1 of 1 job(s) failed: RDViTTrainer_frac100 2d fold 0 (exit code 1)" in err and "none of" not in err
    assert not any(Path("report").iterdir())  # created before training (for the logs); no tables written


def test_aggregate_names_a_damaged_validation_summary(preprocessed: Path, capsys) -> None:
    fold = Path("nnUNet_results/Dataset901_Fake/RDViTTrainer_frac100__nnUNetPlans__2d/fold_0")
    (fold / "validation").mkdir(parents=True)
    (fold / "checkpoint_final.pth").write_bytes(b"")
    (fold / "validation" / "summary.json").write_text("{\"metric_per_case\": [")  # killed mid-write
    (fold.parent / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "RV": 1}}))
    fails(capsys, ["experiment", "aggregate", *GRID, "-o", "report"], "summary.json is not a readable JSON file",
          "rerun the job")
    assert not Path("report").exists()


# --- classify ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage, expected", [
    ("truncated", "blue/0.png is not a readable image (OSError"),
    ("not_an_image", "blue/0.png is not a readable image (not in an image format PIL recognises)"),
])
@pytest.mark.parametrize("workers", ["0", "1"])
def test_classify_train_names_an_unreadable_image(damage: str, expected: str, workers: str, images: Path,
                                                  capsys) -> None:
    path = images / "train" / "blue" / "0.png"
    path.write_bytes(path.read_bytes()[:100] if damage == "truncated" else b"plain text, no image")
    fails(capsys, ["classify", "train", "--data", images, "-o", "out", *TINY_VIT, *RUN, "--workers", workers],
          expected)
    assert not Path("out").exists()


@pytest.mark.parametrize("action", ["train", "eval"])
def test_classify_output_inside_the_dataset_is_refused(action: str, images: Path, checkpoint: Path, capsys) -> None:
    if action == "train":
        argv = ["classify", "train", "--data", images, "-o", images / "train" / "run", *TINY_VIT, *RUN]
    else:
        argv = ["classify", "eval", "--checkpoint", checkpoint, "--data", images, "-o", images / "val", "-device",
                "cpu", "--workers", "0"]
    fails(capsys, argv, "is inside the input folder", "pass a -o/--output folder outside every input")


def test_classify_eval_refuses_a_split_that_is_not_a_folder_name(images: Path, checkpoint: Path, capsys) -> None:
    fails(capsys, ["classify", "eval", "--checkpoint", checkpoint, "--data", images / "train", "--split", "../val",
                   "-device", "cpu"], "--split '../val' is not a folder name")


def test_classify_eval_refuses_loops_for_a_model_without_recurrence(images: Path, checkpoint: Path, capsys) -> None:
    fails(capsys, ["classify", "eval", "--checkpoint", checkpoint, "--data", images, "--loops", "2", "-device", "cpu",
                   "--workers", "0"], "is not a recurrent model", "drop --loops")


def test_classify_train_names_an_unknown_auto_augment_policy(images: Path, capsys) -> None:
    fails(capsys, ["classify", "train", "--data", images, "-o", "out", *TINY_VIT, *RUN, "--aa", "nonsense"],
          "--aa 'nonsense' is not a timm auto-augment policy")


def test_classify_distill_refuses_more_blocks_than_teacher_layers(images: Path, checkpoint: Path, capsys) -> None:
    fails(capsys, ["classify", "distill", "--data", images, "-o", "student", "--teacher", checkpoint, "--blocks", "99",
                   *RUN], "--blocks 99 is more recurrent blocks than the teacher has layers")


def test_classify_names_a_damaged_checkpoint(images: Path, capsys) -> None:
    Path("broken.pt").write_bytes(b"\x80\x02not a torch file")
    fails(capsys, ["classify", "train", "--data", images, "-o", "out", "--resume", "broken.pt", *RUN],
          "broken.pt is not a readable nnunet-rdvit checkpoint")

"""The experiment runner: dry-run commands, resume states, GPU spreading, clear errors, and a tiny real grid."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path

import pytest

from nnunet_rdvit import cli
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.experiments import runner
from nnunet_rdvit.experiments.grid import ExperimentGrid
from nnunet_rdvit.experiments.runner import State, job_state, plan_jobs, resolve_devices, run_jobs
from nnunet_rdvit.fraction_trainer_names import TrainingBudget

DATASET = "Dataset998_Grid"
GRID_ARGS = ["-d", "998", "-tr", "RDViTTrainer", "nnUNetTrainer", "--fractions", "10", "100", "-f", "0", "1",
             "--epochs", "2", "--iterations", "5"]


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A preprocessed dataset as far as the runner looks (plans, data folder, 5-fold split) and an empty results."""
    preprocessed, results = tmp_path / "preprocessed", tmp_path / "results"
    (preprocessed / DATASET / "nnUNetPlans_2d").mkdir(parents=True)
    (preprocessed / DATASET / "nnUNetPlans.json").write_text(json.dumps({"configurations": {
        "2d": {"data_identifier": "nnUNetPlans_2d"},
        "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres"},
        "3d_lowres": {"inherits_from": "2d"}}}))
    (preprocessed / DATASET / "splits_final.json").write_text(json.dumps([{"train": [], "val": []}] * 5))
    results.mkdir()
    monkeypatch.setenv("nnUNet_preprocessed", str(preprocessed))
    monkeypatch.setenv("nnUNet_results", str(results))
    for variable in ("nnUNet_def_n_proc", "nnUNet_n_proc_DA", "nnUNet_compile", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(cli, "COMMANDS", ("experiment",))
    return {"preprocessed": preprocessed, "results": results}


def _fold_dir(results: Path, trainer: str, fold: int) -> Path:
    path = results / DATASET / f"{trainer}__nnUNetPlans__2d" / f"fold_{fold}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _finish(fold_dir: Path) -> None:
    (fold_dir / "validation").mkdir(parents=True, exist_ok=True)
    (fold_dir / "checkpoint_final.pth").write_bytes(b"")
    (fold_dir / "validation" / "summary.json").write_text(json.dumps({"foreground_mean": {"Dice": 0.5}}))


def test_job_states(tmp_path: Path) -> None:
    assert job_state(tmp_path / "absent") is State.NEW
    (tmp_path / "checkpoint_latest.pth").write_bytes(b"")
    assert job_state(tmp_path) is State.RESUME
    (tmp_path / "checkpoint_latest.pth").unlink()
    (tmp_path / "checkpoint_final.pth").write_bytes(b"")
    assert job_state(tmp_path) is State.RESUME  # trained, but the final validation did not finish
    _finish(tmp_path)
    assert job_state(tmp_path) is State.DONE


def test_dry_run_prints_one_command_per_unfinished_job(folders, capsys: pytest.CaptureFixture[str]) -> None:
    _finish(_fold_dir(folders["results"], "RDViTTrainer_frac10_ep2_it5", 0))
    (_fold_dir(folders["results"], "nnUNetTrainer_frac100_ep2_it5", 1) / "checkpoint_latest.pth").write_bytes(b"")
    assert cli.main(["experiment", "run", *GRID_ARGS, "-device", "cpu", "--dry-run"]) == 0
    captured = capsys.readouterr()
    env = "nnUNet_def_n_proc=1 nnUNet_compile=f nnUNet_n_proc_DA=0 nnUNetv2_train Dataset998_Grid 2d"
    assert captured.out.splitlines() == [
        f"{env} 0 -tr nnUNetTrainer_frac10_ep2_it5 -device cpu",
        f"{env} 0 -tr RDViTTrainer_frac100_ep2_it5 -device cpu",
        f"{env} 0 -tr nnUNetTrainer_frac100_ep2_it5 -device cpu",
        f"{env} 1 -tr RDViTTrainer_frac10_ep2_it5 -device cpu",
        f"{env} 1 -tr nnUNetTrainer_frac10_ep2_it5 -device cpu",
        f"{env} 1 -tr RDViTTrainer_frac100_ep2_it5 -device cpu",
        f"{env} 1 -tr nnUNetTrainer_frac100_ep2_it5 -device cpu --c",
    ]
    assert "8 job(s)" in captured.err and "1 finished (skipped), 1 to continue (--c), 6 to start" in captured.err


def test_dry_run_spreads_jobs_over_gpus(folders, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["experiment", "run", *GRID_ARGS[:-4], "-c", "2d", "3d_lowres", "--disable_tta", "-p", "nnUNetPlans",
            "--dry-run"]
    assert cli.main([*argv, "--gpus", "0,3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 16
    assert [line.split()[0] for line in lines] == ["CUDA_VISIBLE_DEVICES=0", "CUDA_VISIBLE_DEVICES=3"] * 8
    assert lines[1] == ("CUDA_VISIBLE_DEVICES=3 nnUNetv2_train Dataset998_Grid 2d 0 -tr nnUNetTrainer_frac10_notta "
                        "-device cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # auto: what this process may see
    assert cli.main(argv) == 0
    assert {line.split()[0] for line in capsys.readouterr().out.splitlines()} == {"CUDA_VISIBLE_DEVICES=5"}
    assert cli.main([*argv, "-device", "cuda", "--gpus", "none"]) == 0  # for a scheduler that assigns GPUs
    assert capsys.readouterr().out.splitlines()[0].startswith("nnUNetv2_train Dataset998_Grid 2d 0 ")


@pytest.mark.parametrize("device, gpus, visible, expected", [
    ("auto", "auto", "2,3", ("cuda", ["2", "3"])),
    ("auto", "auto", "", ("cpu", [])),
    ("auto", "auto", "-1", ("cpu", [])),
    ("cpu", "auto", "0", ("cpu", [])),
    ("auto", "none", "0", ("cpu", [])),
    ("cuda", "none", "", ("cuda", [])),
    ("auto", "1,0", "", ("cuda", ["1", "0"])),
])
def test_resolve_devices(monkeypatch: pytest.MonkeyPatch, device: str, gpus: str, visible: str,
                         expected: tuple) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert resolve_devices(device, gpus) == expected


@pytest.mark.parametrize("device, gpus, message", [
    ("cpu", "0", "contradicts -device cpu"), ("auto", "0,0", "distinct GPU ids"), ("auto", "a", "distinct GPU ids"),
    ("cuda", "auto", "no GPU is visible"),
])
def test_resolve_devices_errors(monkeypatch: pytest.MonkeyPatch, device: str, gpus: str, message: str) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UserError, match=message):
        resolve_devices(device, gpus)


@pytest.mark.parametrize("change, message", [
    (["-tr", "UNetTrainer"], "unknown trainer 'UNetTrainer'"),
    (["-tr", "RDViTTrainer_frac10"], "give the base trainer RDViTTrainer and the fraction with --fractions 10"),
    (["-tr", "ViTTrainer", "ViTTrainer"], "trainers lists a value twice"),
    (["-d", "997"], "dataset 997 is not in nnUNet_preprocessed"),
    (["-d", "Dataset998"], "is not a dataset id"),
    (["-c", "3d_cascade_fullres"], "configuration '3d_cascade_fullres' is not in nnUNetPlans.json"),
    (["-c", "3d_fullres"], "no preprocessed data for 3d_fullres"),
    (["-p", "nnUNetResEncUNetMPlans"], "no plans nnUNetResEncUNetMPlans.json"),
    (["-f", "5"], "fold(s) 5 not in the split"),
    (["--epochs", "3"], "give --epochs and --iterations together"),
    (["--batch-size", "2"], "--batch-size is part of a budget"),
])
def test_clear_errors(folders, capsys: pytest.CaptureFixture[str], change: list[str], message: str) -> None:
    args = {"-d": "998", "-tr": ["RDViTTrainer"], "-c": ["2d"]}
    flag = change[0]
    args[flag] = change[1:] if flag in ("-tr", "-c") else change[1]
    argv = ["experiment", "run", "--dry-run"]
    for key, value in args.items():
        argv += [key, *value] if isinstance(value, list) else [key, value]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("fractions", [["0"], ["101"], ["12.5"], ["ten"]])
def test_bad_fractions_are_rejected_by_the_parser(folders, capsys: pytest.CaptureFixture[str],
                                                  fractions: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["experiment", "run", "-d", "998", "--fractions", *fractions, "--dry-run"])
    assert raised.value.code == 2 and "whole percentage from 1 to 100" in capsys.readouterr().err


@pytest.mark.parametrize("minutes", ["0", "-5", "x", "1.5", ""])
def test_bad_minutes_are_rejected_by_the_parser(folders, capsys: pytest.CaptureFixture[str], minutes: str) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["experiment", "run", "-d", "998", f"--minutes={minutes}", "--dry-run"])
    assert raised.value.code == 2
    message = capsys.readouterr().err
    assert "argument --minutes: expected a positive integer (whole minutes of training" in message and "_min<M>" in message


def test_dry_run_with_a_time_budget_names_the_time_budget_trainers(folders, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["experiment", "run", "-d", "998", "-tr", "RDViTTrainer", "nnUNetTrainer", "--fractions", "100", "-f", "0",
            "--minutes", "30", "--batch-size", "8", "--disable_tta", "-device", "cpu", "--dry-run"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert [line.split(" -tr ")[1] for line in captured.out.splitlines()] == [
        "RDViTTrainer_frac100_min30_bs8_notta -device cpu", "nnUNetTrainer_frac100_min30_bs8_notta -device cpu"]
    assert "30 minutes of training (epochs of 250 iterations), batch 8" in captured.err
    assert cli.main([*argv, "--iterations", "50"]) == 0
    assert "-tr RDViTTrainer_frac100_min30_it50_bs8_notta " in capsys.readouterr().out
    assert cli.main([*argv, "--epochs", "3", "--iterations", "4"]) == 2
    assert "a budget is either --epochs with --iterations, or --minutes" in capsys.readouterr().err


@pytest.mark.parametrize("variable", ["nnUNet_preprocessed", "nnUNet_results"])
def test_missing_nnunet_variables(folders, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                  variable: str) -> None:
    monkeypatch.delenv(variable)
    assert cli.main(["experiment", "aggregate", "-d", "998"]) == 2
    assert f"{variable} is not set: export {variable}=" in capsys.readouterr().err


def test_worker_pool_runs_one_job_per_gpu_and_survives_failures(folders, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = ExperimentGrid(DATASET, ("RDViTTrainer", "ViTTrainer", "nnUNetTrainer"), (10, 50), (0,), ("2d",),
                          TrainingBudget(1, 1))
    results = folders["results"]
    active: dict[str, int] = {}
    ran: list[tuple[str, str]] = []
    lock = threading.Lock()

    def fake_train(name: str, args: list[str], env: dict, log_file: Path, echo=None, prefix: str = "") -> None:
        gpu, trainer, fold = env["CUDA_VISIBLE_DEVICES"], args[args.index("-tr") + 1], int(args[2])
        with lock:
            active[gpu] = active.get(gpu, 0) + 1
            assert active[gpu] == 1, "two jobs on one GPU"
            ran.append((gpu, trainer))
        time.sleep(0.05)
        with lock:
            active[gpu] -= 1
        if trainer.startswith("ViTTrainer_frac50"):
            raise UserError("simulated crash")
        _finish(_fold_dir(results, trainer, fold))

    monkeypatch.setattr(runner, "run_stock_command", fake_train)
    failures = run_jobs(grid, plan_jobs(grid, results, "cuda", ["0", "1"]), ["0", "1"], results,
                        folders["results"] / "logs", echo=io.StringIO())
    assert len(ran) == 6 and {gpu for gpu, _ in ran} == {"0", "1"}
    assert [(job.trainer, error) for job, error in failures] == [("ViTTrainer_frac50_ep1_it1", "simulated crash")]
    states = [p.state for p in plan_jobs(grid, results, "cuda", ["0", "1"])]
    assert states.count(State.DONE) == 5 and states.count(State.NEW) == 1


def test_tiny_grid_end_to_end(tiny_workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """Two trainers, one fraction, fold 0, 2d, 1 epoch × 2 iterations, through the real nnUNetv2_train; then a
    rerun that skips everything, a dry run after an interrupted validation, and the test-set ensemble."""
    results = tmp_path / "results"
    for variable, folder in (("nnUNet_raw", tiny_workspace.raw), ("nnUNet_preprocessed", tiny_workspace.preprocessed),
                             ("nnUNet_results", results)):
        monkeypatch.setenv(variable, str(folder))
    monkeypatch.setattr(cli, "COMMANDS", ("experiment",))
    out = tmp_path / "experiment"
    grid_args = ["-d", str(tiny_workspace.dataset_id), "-tr", "RDViTTrainer", "nnUNetTrainer", "--fractions", "50",
                 "-f", "0", "--epochs", "1", "--iterations", "2", "--batch-size", "2", "--disable_tta", "-device",
                 "cpu", "-o", str(out)]
    assert cli.main(["experiment", "run", *grid_args]) == 0
    printed = capsys.readouterr().out
    assert "[2/2] finished nnUNetTrainer_frac50_ep1_it2_bs2_notta 2d fold 0" in printed
    assert "| RDViTTrainer | 50 % | 2d | 1 |" in printed and "| nnUNetTrainer | 50 % | 2d | 1 |" in printed

    split = json.loads((tiny_workspace.preprocessed / tiny_workspace.dataset / "splits_final.json").read_text())[0]
    for trainer in ("RDViTTrainer", "nnUNetTrainer"):
        fold = results / tiny_workspace.dataset / f"{trainer}_frac50_ep1_it2_bs2_notta__nnUNetPlans__2d" / "fold_0"
        subset = json.loads((fold / "training_subset.json").read_text())
        assert set(subset["cases"]) < set(split["train"]) and subset["budget"]["epochs"] == 1
        summary = json.loads((fold / "validation" / "summary.json").read_text())
        assert sorted(Path(c["prediction_file"]).name.split(".")[0] for c in summary["metric_per_case"]) == \
            sorted(split["val"])
    comparisons = list(csv.DictReader(open(out / "comparisons.csv")))
    assert {(r["trainer_a"], r["trainer_b"], r["n"]) for r in comparisons if r["metric"] == "dice"} == \
        {("RDViTTrainer", "nnUNetTrainer", str(len(split["val"])))}
    assert (out / "dice_vs_fraction.png").is_file() and "HD95" in (out / "results.md").read_text()

    assert cli.main(["experiment", "run", *grid_args, "--dry-run"]) == 0  # everything finished: nothing to run
    captured = capsys.readouterr()
    assert captured.out == "" and "2 finished (skipped), 0 to continue (--c), 0 to start" in captured.err

    (fold / "validation" / "summary.json").unlink()  # nnUNetTrainer's: as if its final validation was interrupted
    assert cli.main(["experiment", "run", *grid_args, "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().endswith("-tr nnUNetTrainer_frac50_ep1_it2_bs2_notta -device cpu --c")

    test_args = [*grid_args[:2], "-tr", "RDViTTrainer", *grid_args[5:]]
    assert cli.main(["experiment", "aggregate", *test_args, "--test", "--no-hd95"]) == 0
    test_rows = list(csv.DictReader(open(out / "test_summary.csv")))
    n_test_cases = len(list((tiny_workspace.raw / tiny_workspace.dataset / "labelsTs").iterdir()))
    assert {r["n"] for r in test_rows} == {str(n_test_cases)}
    assert "## Test set" in (out / "results.md").read_text()

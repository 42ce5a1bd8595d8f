"""Aggregation of fabricated nnU-Net summaries: fold arithmetic, HD95, Wilcoxon, and the written report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nnunet_rdvit import cli
from nnunet_rdvit.experiments.aggregate import (OVERALL, CaseScore, collect_validation_scores, summarise_over_cases,
                                                summarise_over_folds)
from nnunet_rdvit.experiments.grid import ExperimentGrid, Job
from nnunet_rdvit.experiments.hd95 import hd95
from nnunet_rdvit.experiments.report import ExperimentResults, markdown_report, write_report
from nnunet_rdvit.experiments.stats import paired_comparisons, wilcoxon_signed_rank
from nnunet_rdvit.fraction_trainer_names import TrainingBudget

DATASET = "Dataset999_Fake"
LABELS = {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
CASES = ("patient001_frame01", "patient001_frame12", "patient002_frame01")


def dice_of(trainer: str, percent: int, fold: int, case: int, label: int) -> float:
    """Known per-case Dice: RD-ViT beats ViT by 0.01·(case+1) + 0.004·fold (no ties); more data helps; one NaN
    (empty RV) per fold."""
    if label == 1 and case == 2:
        return math.nan
    edge = 0.01 * (case + 1) if trainer == "RDViTTrainer" else -0.004 * fold
    return 0.5 + 0.1 * label + 0.002 * percent - 0.05 * fold + edge


def write_job(results: Path, grid: ExperimentGrid, job: Job) -> Path:
    """A finished fold as nnU-Net leaves it: checkpoint, validation/summary.json, dataset.json and plans.json."""
    fold_dir = grid.fold_dir(results, job)
    (fold_dir / "validation").mkdir(parents=True)
    (fold_dir / "checkpoint_final.pth").write_bytes(b"")
    model_dir = fold_dir.parent
    (model_dir / "dataset.json").write_text(json.dumps({"labels": LABELS, "file_ending": ".nii.gz"}))
    (model_dir / "plans.json").write_text(json.dumps({"image_reader_writer": "SimpleITKIO"}))
    entries = []
    for index, case in enumerate(CASES):
        dice = [dice_of(job.spec.base, job.spec.percent, job.fold, index, label) for label in (1, 2, 3)]
        metrics = {str(label): {"Dice": None if math.isnan(d) else d} for label, d in zip((1, 2, 3), dice)}
        entries.append({"metrics": metrics, "prediction_file": str(fold_dir / "validation" / f"{case}.nii.gz"),
                        "reference_file": f"/elsewhere/gt_segmentations/{case}.nii.gz"})
    (fold_dir / "validation" / "summary.json").write_text(json.dumps({"metric_per_case": entries}))
    return fold_dir


@pytest.fixture
def fabricated(tmp_path: Path) -> tuple[ExperimentGrid, Path]:
    grid = ExperimentGrid(DATASET, ("RDViTTrainer", "ViTTrainer"), (10, 100), (0, 1), ("2d",), TrainingBudget(1, 2))
    results = tmp_path / "results"
    for job in grid.jobs():
        write_job(results, grid, job)
    return grid, results


def test_summary_over_folds_follows_nnunet_arithmetic(fabricated) -> None:
    grid, results = fabricated
    collected = collect_validation_scores(grid, results, None, with_hd95=False, progress=False)
    assert collected.structures == ["RV", "MYO", "LV"] and not collected.missing
    rows = {(r.trainer, r.percent, r.structure): r for r in summarise_over_folds(collected.scores, collected.structures)}

    # RD-ViT at 10 %, MYO: fold 0 cases 0.72+0.01/0.02/0.03 -> 0.74; fold 1: 0.69; mean 0.715, std 0.05/sqrt(2).
    myo = rows[("RDViTTrainer", 10, "MYO")]
    assert (myo.n, myo.model) == (2, "RDViTTrainer_frac10_ep1_it2")
    assert myo.dice_mean == pytest.approx(0.715) and myo.dice_std == pytest.approx(0.05 / math.sqrt(2))
    # RV skips the NaN case: fold 0 mean of 0.62+0.01 and 0.62+0.02.
    assert rows[("RDViTTrainer", 10, "RV")].dice_mean == pytest.approx((0.635 + 0.585) / 2)
    # Overall = mean over structures of each fold's structure means, then over folds (nnU-Net's foreground_mean).
    for (trainer, percent, structure), row in rows.items():
        if structure != OVERALL:
            continue
        per_fold = [np.mean([np.nanmean([dice_of(trainer, percent, fold, c, label) for c in range(3)])
                             for label in (1, 2, 3)]) for fold in (0, 1)]
        assert row.dice_mean == pytest.approx(np.mean(per_fold))
        assert row.dice_std == pytest.approx(np.std(per_fold, ddof=1))
        assert math.isnan(row.hd95_mean)


def test_unfinished_folds_are_reported_not_averaged(fabricated) -> None:
    grid, results = fabricated
    (grid.fold_dir(results, grid.jobs()[0]) / "validation" / "summary.json").unlink()
    collected = collect_validation_scores(grid, results, None, with_hd95=False, progress=False)
    assert collected.missing == [grid.jobs()[0]]
    rows = summarise_over_folds(collected.scores, collected.structures)
    first = grid.jobs()[0]
    assert {r.n for r in rows if (r.trainer, r.percent) == (first.spec.base, first.spec.percent)} == {1}


def test_wilcoxon_statistic_and_p_value() -> None:
    # Differences 1, 2, 3, -4, 5: W+ = 11, W- = 4 -> W = 4; exact two-sided p = 2 * 7/32.
    statistic, p = wilcoxon_signed_rank(np.array([1.0, 2, 3, -4, 5]) / 100 + 0.5, np.full(5, 0.5))
    assert statistic == 4 and p == pytest.approx(14 / 32)
    assert all(math.isnan(v) for v in wilcoxon_signed_rank(np.ones(3), np.ones(3)))


def test_paired_comparisons_pair_the_same_cases(fabricated) -> None:
    grid, results = fabricated
    collected = collect_validation_scores(grid, results, None, with_hd95=False, progress=False)
    comparisons = paired_comparisons(collected.scores, [("RDViTTrainer", "ViTTrainer")], collected.structures,
                                     ("dice",))
    by_key = {(c.percent, c.structure): c for c in comparisons}
    assert len(comparisons) == 2 * 4
    lv = by_key[(10, "LV")]
    # Six pairs (2 folds × 3 cases), differences 0.01, 0.02, 0.03, 0.014, 0.024, 0.034: all positive -> W = 0 and
    # the exact two-sided p = 2 / 2^6.
    assert (lv.n, lv.statistic) == (6, 0) and lv.mean_difference == pytest.approx(0.022)
    assert lv.p_value == pytest.approx(2 / 64)
    assert by_key[(10, "RV")].n == 4  # the NaN case is dropped from the pairs
    assert by_key[(100, OVERALL)].mean_difference == pytest.approx(0.022)


def test_hd95_on_known_geometry() -> None:
    reference = np.zeros((8, 6, 6), bool)
    prediction = np.zeros_like(reference)
    reference[2], prediction[5] = True, True  # two parallel planes, 3 slices apart at 2 mm: every distance is 6 mm
    assert hd95(prediction, reference, (2.0, 0.7, 0.7)) == pytest.approx(6.0)
    assert hd95(reference, reference, (1.0, 1.0, 1.0)) == 0
    assert math.isnan(hd95(np.zeros_like(reference), reference, (1.0, 1.0, 1.0)))
    with pytest.raises(ValueError):
        hd95(reference, reference, (1.0, 1.0))


def _save_nifti(path: Path, array: np.ndarray, spacing: tuple[float, float, float]) -> None:
    nib.save(nib.Nifti1Image(array.astype(np.uint8), np.diag([*spacing, 1.0])), path)


def test_hd95_from_files_with_fallback_to_gt_segmentations(fabricated, tmp_path: Path) -> None:
    """Summaries name absolute paths of the machine that wrote them; moved results fall back to nnU-Net's folders."""
    grid, results = fabricated
    job = grid.jobs()[0]
    gt_dir = tmp_path / "preprocessed" / DATASET / "gt_segmentations"
    gt_dir.mkdir(parents=True)
    for case in CASES:
        reference = np.zeros((6, 6, 8), np.uint8)  # (x, y, z) in the file; SimpleITK reads it as (z, y, x)
        prediction = np.zeros_like(reference)
        reference[:, :, 2], prediction[:, :, 5] = 3, 3  # LV: planes 3 slices apart at 2 mm
        reference[1:3, 1:3, 1], prediction[1:3, 1:3, 1] = 2, 2  # MYO: identical
        _save_nifti(gt_dir / f"{case}.nii.gz", reference, (0.7, 0.7, 2.0))
        _save_nifti(grid.fold_dir(results, job) / "validation" / f"{case}.nii.gz", prediction, (0.7, 0.7, 2.0))
    collected = collect_validation_scores(grid, results, tmp_path / "preprocessed", progress=False)
    scores = [s for s in collected.scores if s.model == job.trainer and s.fold == job.fold]
    assert [s.hd95 for s in scores if s.structure == "LV"] == pytest.approx([6.0] * 3)
    assert {s.hd95 for s in scores if s.structure == "MYO"} == {0.0}
    assert all(math.isnan(s.hd95) for s in scores if s.structure == "RV")  # absent from both
    assert collected.hd95_unavailable == 3 * (len(grid.jobs()) - 1)  # other jobs have no files


def test_summary_over_cases() -> None:
    scores = [CaseScore("RDViTTrainer", "RDViTTrainer_frac10", 10, "2d", None, f"c{i}", s, d, h)
              for i, (d_rv, d_lv) in enumerate([(0.6, 0.8), (0.8, 1.0)])
              for s, d, h in (("RV", d_rv, 2.0 * (i + 1)), ("LV", d_lv, math.nan if i else 4.0))]
    rows = {r.structure: r for r in summarise_over_cases(scores, ["RV", "LV"])}
    assert rows["RV"].dice_mean == pytest.approx(0.7) and rows["RV"].dice_std == pytest.approx(0.1414213)
    assert rows[OVERALL].dice_mean == pytest.approx(0.8) and rows[OVERALL].n == 2
    assert rows[OVERALL].hd95_mean == pytest.approx(3.0) and math.isnan(rows[OVERALL].hd95_std)


def test_report_files(fabricated, tmp_path: Path) -> None:
    grid, results = fabricated
    collected = collect_validation_scores(grid, results, None, with_hd95=False, progress=False)
    rows = summarise_over_folds(collected.scores, collected.structures)
    outcome = ExperimentResults(grid, collected.structures, collected.scores, rows,
                                paired_comparisons(collected.scores, [("RDViTTrainer", "ViTTrainer")],
                                                   collected.structures), [], 0)
    paths = write_report(outcome, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"validation_summary.csv", "validation_per_case.csv", "comparisons.csv",
                                                "dice_vs_fraction.png", "results.md"}
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(paths["validation summary (CSV)"]) as file:
        table = list(csv.DictReader(file))
    myo = next(r for r in table if (r["trainer"], r["percent"], r["structure"]) == ("RDViTTrainer", "10", "MYO"))
    assert float(myo["dice_mean"]) == pytest.approx(0.715) and myo["hd95_mean"] == ""
    markdown = markdown_report(outcome)
    assert "| RDViTTrainer | 10 % | 2d | 2 | 0.610 ± 0.035 | 0.715 ± 0.035 | 0.815 ± 0.035 | 0.713 ± 0.035 |" \
        in markdown
    assert "| RDViTTrainer | ViTTrainer | 10 % | 2d | LV | 6 |" in markdown
    assert "1 epoch × 2 iterations" in markdown and not list((tmp_path / "out").glob(".*"))  # no temp files left


def test_aggregate_command(fabricated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    grid, results = fabricated
    preprocessed = tmp_path / "preprocessed"
    (preprocessed / DATASET / "nnUNetPlans_2d").mkdir(parents=True)
    (preprocessed / DATASET / "nnUNetPlans.json").write_text(
        json.dumps({"configurations": {"2d": {"data_identifier": "nnUNetPlans_2d"}}}))
    (preprocessed / DATASET / "splits_final.json").write_text(json.dumps([{"train": [], "val": []}] * 2))
    monkeypatch.setenv("nnUNet_preprocessed", str(preprocessed))
    monkeypatch.setenv("nnUNet_results", str(results))
    monkeypatch.setattr(cli, "COMMANDS", ("experiment",))
    out = tmp_path / "report"
    argv = ["experiment", "aggregate", "-d", "999", "-tr", "RDViTTrainer", "ViTTrainer", "--fractions", "10", "100",
            "-f", "0", "1", "--epochs", "1", "--iterations", "2", "-o", str(out), "--compare", "ViTTrainer:RDViTTrainer"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| ViTTrainer | 100 % | 2d | 2 |" in printed and "results.md" in printed
    comparisons = list(csv.DictReader(open(out / "comparisons.csv")))
    assert {(r["trainer_a"], r["trainer_b"]) for r in comparisons} == {("ViTTrainer", "RDViTTrainer")}
    assert cli.main([*argv[:-2], "--compare", "ViTTrainer:nnUNetTrainer"]) == 2
    assert "not among the grid's trainers" in capsys.readouterr().err
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert cli.main([*argv, "--test", "-device", "cpu"]) == 2
    assert f"test-set evaluation needs test images in {tmp_path / DATASET / 'imagesTs'}" in capsys.readouterr().err

"""Per-case scores from nnU-Net's ``summary.json`` files, and their summary over folds.

Dice is nnU-Net's own (``metric_per_case[i].metrics[label].Dice``, NaN where both prediction and reference are
empty). HD95 is computed here (:mod:`.hd95`) from the prediction and reference files the summary names; when a
summary was moved from the machine that wrote it, the prediction is looked up beside the summary and the
reference in ``nnUNet_preprocessed/<dataset>/gt_segmentations``.

Validation numbers follow nnU-Net's summary arithmetic: per fold, each structure's mean over cases (NaNs
skipped) and the overall value as the mean of the structure means (nnU-Net's ``foreground_mean``); then
mean ± sample standard deviation of those fold values over folds. Test-set numbers are mean ± sample std over
cases. See :func:`overall_value` for the overall value.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from nnunet_rdvit.experiments.grid import ExperimentGrid, Job
from nnunet_rdvit.experiments.hd95 import hd95
from nnunet_rdvit.nnunet_folders import read_json
from nnunet_rdvit.experiments.runner import State, job_state
from nnunet_rdvit.quiet_itk import quiet_simpleitk

OVERALL = "mean"  # the structure name of the overall (mean over structures) value


@dataclass(frozen=True)
class CaseScore:
    trainer: str  # base trainer, e.g. RDViTTrainer
    model: str  # the full trainer name (fraction, budget), i.e. the results folder's trainer
    percent: int
    configuration: str
    fold: int | None  # None: a test-set prediction by the ensemble of folds
    case: str
    structure: str
    dice: float
    hd95: float


@dataclass(frozen=True)
class SummaryRow:
    trainer: str
    model: str  # the full trainer name (fraction, budget), i.e. the results folder's trainer
    percent: int
    configuration: str
    structure: str
    n: int  # folds (validation) or cases (test set) the mean and std are over
    dice_mean: float
    dice_std: float
    hd95_mean: float
    hd95_std: float


@dataclass
class CollectedScores:
    scores: list[CaseScore]
    structures: list[str]  # in label order; OVERALL is not included
    missing: list[Job]  # jobs without a finished validation
    hd95_unavailable: int  # cases whose prediction or reference file could not be found


def structure_names(dataset_json: dict) -> dict[str, str]:
    """nnU-Net summary label key (``"1"``, or ``"(1, 2)"`` for regions) -> structure name from dataset.json."""
    return {str(tuple(value)) if isinstance(value, (list, tuple)) else str(value): name
            for name, value in dataset_json["labels"].items() if name != "ignore" and value != 0}


def collect_validation_scores(grid: ExperimentGrid, results: Path, preprocessed: Path | None,
                              with_hd95: bool = True, progress: bool = True) -> CollectedScores:
    """Scores of every finished job of ``grid``; unfinished ones are listed in ``missing``."""
    scores: list[CaseScore] = []
    structures: list[str] = []
    missing: list[Job] = []
    unavailable = 0
    gt_dir = preprocessed / grid.dataset / "gt_segmentations" if preprocessed else None
    for job in grid.jobs():
        fold_dir = grid.fold_dir(results, job)
        if job_state(fold_dir) is not State.DONE:
            missing.append(job)
            continue
        model_dir = grid.model_dir(results, job)
        names = structure_names(_read_json(model_dir / "dataset.json"))
        structures = structures or list(names.values())
        read = segmentation_reader(model_dir / "plans.json") if with_hd95 else None
        cases, n_unavailable = read_summary(fold_dir / "validation" / "summary.json", names, read, gt_dir,
                                            desc=f"{job.label()}" if progress else None)
        unavailable += n_unavailable
        scores += [CaseScore(job.spec.base, job.trainer, job.spec.percent, job.configuration, job.fold, case,
                             structure, dice, hd)
                   for case, structure, dice, hd in cases]
    return CollectedScores(scores, structures, missing, unavailable)


def read_summary(summary_file: Path, names: dict[str, str], read_segmentation: Callable | None,
                 reference_dir: Path | None, desc: str | None = None) -> tuple[list[tuple[str, str, float, float]], int]:
    """``[(case, structure, dice, hd95)]`` of one nnU-Net summary.json and the number of cases without HD95.

    ``read_segmentation(path) -> (array, spacing)``; None skips HD95 (NaN).
    """
    from tqdm import tqdm

    summary = _read_json(summary_file)
    rows, unavailable = [], 0
    for entry in tqdm(summary["metric_per_case"], desc=f"Reading {desc}", unit="case", disable=desc is None,
                      leave=False):
        case = _case_id(entry["prediction_file"])
        distances = {}
        if read_segmentation is not None:
            files = _locate(entry, summary_file.parent, reference_dir)
            if files is None:
                unavailable += 1
            else:
                distances = _hd95_per_label(*files, names, read_segmentation)
        for key, metrics in entry["metrics"].items():
            rows.append((case, names.get(key, key), _float(metrics["Dice"]), distances.get(key, math.nan)))
    return rows, unavailable


def summarise_over_folds(scores: Iterable[CaseScore], structures: list[str]) -> list[SummaryRow]:
    """Mean ± sample std over folds of each fold's structure means and of their mean (``OVERALL``)."""
    fold_means: dict[tuple, dict[str, list[float]]] = {}
    for key, by_fold in _group(scores, _model_key, lambda s: s.fold).items():
        per_fold = fold_means.setdefault(key, {})
        for fold_scores in by_fold.values():
            dice = {s: _nanmean([x.dice for x in fold_scores if x.structure == s]) for s in structures}
            distance = {s: _nanmean([x.hd95 for x in fold_scores if x.structure == s]) for s in structures}
            for structure in structures:
                per_fold.setdefault(("dice", structure), []).append(dice[structure])
                per_fold.setdefault(("hd95", structure), []).append(distance[structure])
            per_fold.setdefault(("dice", OVERALL), []).append(overall_value("dice", list(dice.values())))
            per_fold.setdefault(("hd95", OVERALL), []).append(overall_value("hd95", list(distance.values())))
    return _rows(fold_means, structures)


def summarise_over_cases(scores: Iterable[CaseScore], structures: list[str]) -> list[SummaryRow]:
    """Mean ± sample std over cases (test set); a case's ``OVERALL`` value is its mean over structures."""
    values: dict[tuple, dict[str, list[float]]] = {}
    for key, by_case in _group(scores, _model_key, lambda s: s.case).items():
        per_case = values.setdefault(key, {})
        for case_scores in by_case.values():
            dice = {s.structure: s.dice for s in case_scores}
            distance = {s.structure: s.hd95 for s in case_scores}
            for structure in structures:
                per_case.setdefault(("dice", structure), []).append(dice.get(structure, math.nan))
                per_case.setdefault(("hd95", structure), []).append(distance.get(structure, math.nan))
            per_case.setdefault(("dice", OVERALL), []).append(
                overall_value("dice", [dice.get(s, math.nan) for s in structures]))
            per_case.setdefault(("hd95", OVERALL), []).append(
                overall_value("hd95", [distance.get(s, math.nan) for s in structures]))
    return _rows(values, structures)


def _model_key(score: CaseScore) -> tuple[str, str, int, str]:
    return score.configuration, score.percent, score.trainer, score.model


def _rows(values: dict[tuple, dict[tuple[str, str], list[float]]], structures: list[str]) -> list[SummaryRow]:
    rows = []
    for key in sorted(values):
        configuration, percent, trainer, model = key
        for structure in [*structures, OVERALL]:
            dice, distance = values[key][("dice", structure)], values[key][("hd95", structure)]
            rows.append(SummaryRow(trainer, model, percent, configuration, structure, len(dice),
                                   *_mean_std(dice), *_mean_std(distance)))
    return rows


def _group(scores: Iterable[CaseScore], outer: Callable, inner: Callable) -> dict[tuple, dict]:
    grouped: dict[tuple, dict] = {}
    for score in scores:
        grouped.setdefault(outer(score), {}).setdefault(inner(score), []).append(score)
    return grouped


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std of the defined values; the std is NaN with fewer than two."""
    defined = [v for v in values if not math.isnan(v)]
    if not defined:
        return math.nan, math.nan
    return float(np.mean(defined)), float(np.std(defined, ddof=1)) if len(defined) > 1 else math.nan


def _nanmean(values: list[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def overall_value(metric: str, values: list[float]) -> float:
    """The mean over structures: for Dice of the defined ones (as nnU-Net's ``foreground_mean``), for HD95 only
    when every structure has one (a mean over the structures that happen to be present would not compare)."""
    if metric == "hd95":
        return math.nan if any(math.isnan(v) for v in values) else float(np.mean(values))
    return _nanmean(values)


def _float(value: object) -> float:
    return math.nan if value is None else float(value)


def _case_id(prediction_file: str) -> str:
    name = Path(prediction_file).name
    for ending in (".nii.gz", ".nrrd", ".mha", ".nii", ".png", ".tif", ".tiff", ".bmp"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return name.rsplit(".", 1)[0]


def _locate(entry: dict, summary_dir: Path, reference_dir: Path | None) -> tuple[Path, Path] | None:
    prediction, reference = Path(entry["prediction_file"]), Path(entry["reference_file"])
    if not prediction.is_file():
        prediction = summary_dir / prediction.name
    if not reference.is_file() and reference_dir is not None:
        reference = reference_dir / reference.name
    return (prediction, reference) if prediction.is_file() and reference.is_file() else None


def _hd95_per_label(prediction_file: Path, reference_file: Path, names: dict[str, str],
                    read_segmentation: Callable) -> dict[str, float]:
    prediction, spacing = read_segmentation(prediction_file)
    reference, _ = read_segmentation(reference_file)
    distances = {}
    for key in names:
        labels = ast.literal_eval(key)  # "1" -> 1, a region "(1, 2)" -> (1, 2)
        labels = list(labels) if isinstance(labels, tuple) else [labels]
        distances[key] = hd95(np.isin(prediction, labels), np.isin(reference, labels), spacing)
    return distances


def segmentation_reader(plans_file: Path) -> Callable[[Path], tuple[np.ndarray, list[float]]]:
    """nnU-Net's reader for this dataset's files (as its evaluation uses): path -> (array, spacing per axis)."""
    from nnunetv2.imageio.reader_writer_registry import recursive_find_reader_writer_by_name

    reader = recursive_find_reader_writer_by_name(_read_json(plans_file)["image_reader_writer"])()

    def read(path: Path) -> tuple[np.ndarray, list[float]]:
        with quiet_simpleitk():
            segmentation, properties = reader.read_seg(str(path))
        return segmentation[0], list(properties["spacing"])

    return read


def _read_json(path: Path) -> dict:
    return read_json(path, "it is written by nnUNetv2_train: rerun the job (e.g. with --c), or move its folder away "
                           "to leave it out")

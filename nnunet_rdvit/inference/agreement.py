"""Agreement of predicted with ground-truth cardiac indices over a labelled set — the ACDC challenge's clinical
evaluation (Bernard et al., IEEE TMI 2018): per index, Pearson's r, the mean difference (bias, predicted −
ground truth), its standard deviation and the 95 % limits of agreement (bias ± 1.96 SD), plus the mean
absolute error.

Predictions are ``predict`` output folders (``<patient>/cardiac_indices.json``); ground truth is ACDC-layout
patient folders (``Info.cfg`` and ``*_frameNN_gt.nii.gz``), from which the indices are computed with the same
code. Patients are matched by folder name. Patients present on one side only are listed, not failures; a
ground truth that cannot be read, whose frames differ from the prediction's, or that lies on another voxel grid
(shape, spacing) than the image the prediction was made on, is a failure of that patient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from nnunet_rdvit.acdc_labels import LABELS
from nnunet_rdvit.atomic import write_json_atomic
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.inference.agreement_figure import write_bland_altman
from nnunet_rdvit.inference.cardiac_indices import INDICES, cardiac_indices, structure_volumes_ml
from nnunet_rdvit.inference.discovery import PHASES, find_patient_folders, frame_file, read_frames
from nnunet_rdvit.inference.nifti_io import Volume3D, nifti_stem, read_labels
from nnunet_rdvit.inference.tables import write_csv
from nnunet_rdvit.output_lock import output_lock
from nnunet_rdvit.paths import check_output_outside, prepare_output_folder, remove_if_empty, require_folder

INDICES_FILE = "cardiac_indices.json"


@dataclass
class AgreementResult:
    output: Path
    statistics: dict[str, dict]  # index -> n, pearson_r, bias, sd, loa_lower, loa_upper, mean_absolute_error
    pairs: list[dict]  # per patient: predicted and ground-truth value of every index
    failures: list[tuple[str, str]] = field(default_factory=list)  # (patient, why it was left out)
    unmatched: dict[str, list[str]] = field(default_factory=dict)  # "no_ground_truth" / "no_prediction" -> names


def compare_indices(predictions: Path, ground_truth: Sequence[Path], output: Path) -> AgreementResult:
    predicted = _predicted_records(predictions)
    truth_folders = _ground_truth_folders(ground_truth)
    check_output_outside(output, [predictions, *ground_truth])
    created = prepare_output_folder(output)
    try:
        with output_lock(output, "index-agreement", clean_depth=0):
            return _compare(predictions, predicted, truth_folders, output)
    finally:
        remove_if_empty(output, created)


def _compare(predictions: Path, predicted: dict[str, dict], truth_folders: dict[str, Path],
             output: Path) -> AgreementResult:
    failures: list[tuple[str, str]] = []
    pairs = []
    for name in sorted(set(predicted) & set(truth_folders)):
        truth, problem = _ground_truth(truth_folders[name], predicted[name], predictions / name)
        if problem:
            failures.append((name, problem))
            continue
        pairs.append({"patient": name, **{f"{index}_predicted": predicted[name]["indices"][index] for index in INDICES},
                      **{f"{index}_ground_truth": truth[index] for index in INDICES}})
    unmatched = {"no_ground_truth": sorted(set(predicted) - set(truth_folders)),
                 "no_prediction": sorted(set(truth_folders) - set(predicted))}
    if not pairs:
        raise UserError(f"no patient has both a prediction in {predictions} and a readable ground truth "
                        f"({len(predicted)} predicted, {len(truth_folders)} with ground truth, "
                        f"{len(failures)} failed" + (f": {failures[0][0]}: {failures[0][1]}" if failures else "")
                        + ")")
    statistics = {index: agreement_statistics([p[f"{index}_predicted"] for p in pairs],
                                              [p[f"{index}_ground_truth"] for p in pairs]) for index in INDICES}
    result = AgreementResult(output, statistics, pairs, failures, unmatched)
    _write(result)
    return result


def agreement_statistics(predicted: Sequence[float | None], truth: Sequence[float | None]) -> dict:
    """Bland–Altman and correlation statistics over the pairs where both values exist."""
    from scipy.stats import pearsonr

    both = [(p, t) for p, t in zip(predicted, truth) if p is not None and t is not None]
    n = len(both)
    stats: dict = {"n": n, "pearson_r": None, "bias": None, "sd": None, "loa_lower": None, "loa_upper": None,
                   "mean_absolute_error": None}
    if n == 0:
        return stats
    p, t = (np.array(values, dtype=float) for values in zip(*both))
    difference = p - t
    stats.update(bias=float(difference.mean()), mean_absolute_error=float(np.abs(difference).mean()))
    if n >= 2:
        sd = float(difference.std(ddof=1))
        stats.update(sd=sd, loa_lower=stats["bias"] - 1.96 * sd, loa_upper=stats["bias"] + 1.96 * sd)
    if n >= 3 and np.ptp(p) > 0 and np.ptp(t) > 0:
        stats["pearson_r"] = float(pearsonr(p, t).statistic)
    return stats


def _predicted_records(predictions: Path) -> dict[str, dict]:
    require_folder(predictions, "prediction folder")
    records = {}
    for path in sorted(predictions.glob(f"*/{INDICES_FILE}")):
        try:
            record = json.loads(path.read_text())
            frames = {phase: int(record["frames"][phase]) for phase in PHASES}
            values = [record["indices"][index] for index in INDICES]
            if not isinstance(record["patient"], str) or not all(v is None or isinstance(v, (int, float))
                                                                 for v in values):
                raise TypeError("a patient name and numeric indices are expected")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"{path} is not a cardiac_indices.json written by predict ({type(error).__name__}: "
                            f"{error}); run predict again into that folder, or remove the file") from None
        records[record["patient"]] = {**record, "frames": frames}
    if not records:
        raise UserError(f"{predictions} has no <patient>/{INDICES_FILE}; run `nnunet-rdvit predict` on patient "
                        f"folders (with Info.cfg, or --ed/--es) and pass its output folder")
    return records


def _ground_truth_folders(paths: Sequence[Path]) -> dict[str, Path]:
    folders: dict[str, Path] = {}
    for path in paths:
        require_folder(path, "ground-truth folder")
        found = find_patient_folders(path)
        if not found:
            raise UserError(f"{path} holds no patient folders with Info.cfg (ACDC layout: patientNNN/Info.cfg with "
                            f"patientNNN_frameNN_gt.nii.gz)")
        for folder in found:
            if folder.name in folders:
                raise UserError(f"patient {folder.name} is in {folders[folder.name]} and {folder}")
            folders[folder.name] = folder
    return folders


def _ground_truth(folder: Path, record: dict, predicted_folder: Path) -> tuple[dict | None, str | None]:
    """The ground truth's indices, or why this patient cannot be compared (other frames, another voxel grid)."""
    predicted_frames = record["frames"]
    frames, problem = read_frames(folder)
    if problem:
        return None, problem
    if {phase: int(predicted_frames[phase]) for phase in PHASES} != frames:
        return None, (f"the prediction used frames ED {predicted_frames['ED']} / ES {predicted_frames['ES']}, "
                      f"Info.cfg says ED {frames['ED']} / ES {frames['ES']}")
    volumes = {}
    for phase in PHASES:
        path = frame_file(folder, frames[phase], "_gt")
        if path is None:
            return None, f"no ground truth {folder.name}_frame{frames[phase]:02d}_gt.nii.gz for the {phase} frame"
        try:
            labels = read_labels(path, frozenset(LABELS.values()))
        except UserError as error:
            return None, str(error)
        mismatch = _grid_mismatch(labels, predicted_folder / record.get("segmentations", {}).get(phase, ""))
        if mismatch:
            return None, mismatch
        volumes[phase] = structure_volumes_ml(labels.data, labels.voxel_volume_ml)
    return cardiac_indices(volumes["ED"], volumes["ES"]), None


def _grid_mismatch(labels: Volume3D, segmentation: Path) -> str | None:
    """Why the ground truth is not on the voxel grid of the image the prediction was made on, or None.

    The prediction's sidecar (``<case>.json`` beside its segmentation) records that image's shape and spacing."""
    sidecar = segmentation.with_name(nifti_stem(segmentation) + ".json")
    try:
        made_on = json.loads(sidecar.read_text())
        shape, spacing = tuple(made_on["shape"]), tuple(made_on["spacing_mm"])
    except (OSError, ValueError, KeyError, TypeError):
        return (f"the prediction's sidecar {sidecar} is missing or unreadable, so the ground truth cannot be checked "
                f"against the image's grid; run predict again into that folder")
    if labels.data.shape != shape:
        return (f"{labels.path.name} has shape {_shape(labels.data.shape)}, the image the prediction was made on "
                f"{_shape(shape)}: the ground truth belongs to another image or was resampled; pass the labels "
                f"drawn on the predicted image")
    if not np.allclose(labels.spacing, spacing, rtol=1e-4, atol=1e-5):
        return (f"{labels.path.name} has voxel spacing {_shape(labels.spacing)} mm, the image the prediction was "
                f"made on {_shape(spacing)} mm: volumes would not be comparable; pass the labels drawn on the "
                f"predicted image")
    return None


def _shape(values: Sequence[float]) -> str:
    return "×".join(f"{value:g}" for value in values)


def _write(result: AgreementResult) -> None:
    output = result.output
    write_csv(output / "agreement.csv", [{"index": index, "unit": INDICES[index][1], **stats}
                                         for index, stats in result.statistics.items()])
    write_csv(output / "agreement_cases.csv", result.pairs)
    write_bland_altman(output / "bland_altman.png", result.pairs, result.statistics)
    write_json_atomic(output / "agreement.json", {
        "statistics": result.statistics,
        "units": {index: unit for index, (_, unit) in INDICES.items()},
        "n_patients": len(result.pairs),
        "failures": [{"patient": name, "problem": problem} for name, problem in result.failures],
        "unmatched": result.unmatched,
        "cases": result.pairs,
    })

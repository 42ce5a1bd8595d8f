"""The labelled cases an analysis runs on, and their preprocessing into nnU-Net's preprocessed space.

Cases are a fold's validation cases (the split in ``nnUNet_preprocessed/<dataset>/splits_final.json``, the files
in ``nnUNet_raw/<dataset>``) or any folder pair in nnU-Net's naming (``CASE_0000<ending>`` images,
``CASE<ending>`` labels). Each case goes through the model's own preprocessor, so the label is cropped and
resampled exactly like the image and every statistic is computed on the grid the network sees.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nnunet_rdvit.errors import UserError
from nnunet_rdvit.inference.model import LoadedModel
from nnunet_rdvit.inference.nifti_io import is_nifti_name, load_nifti
from nnunet_rdvit.nnunet_folders import nnunet_folder
from nnunet_rdvit.paths import require_folder
from nnunet_rdvit.quiet_itk import quiet_simpleitk


@dataclass(frozen=True)
class LabelledCase:
    name: str
    image_files: tuple[Path, ...]  # one per input channel, in channel order
    label_file: Path


@dataclass
class PreprocessedCase:
    name: str
    data: torch.Tensor  # (C, *spatial) float32, nnU-Net's preprocessed image
    labels: np.ndarray  # (*spatial) int, the reference label on the same grid; nnU-Net's -1 (outside the
    # non-zero mask) counted as background
    spacing: tuple[float, ...]  # of the preprocessed grid, per spatial axis


def validation_cases(model_folder: Path, fold: int | str, dataset_json: dict) -> list[LabelledCase]:
    """The validation cases of ``fold`` in nnU-Net's ``splits_final.json``, found in ``nnUNet_raw``."""
    if fold == "all":
        raise UserError("fold 'all' was trained on every case and has no validation cases; pass labelled cases "
                        "with --images DIR --labels DIR")
    dataset = model_folder.resolve().parent.name
    splits_file = _nnunet_folder("nnUNet_preprocessed") / dataset / "splits_final.json"
    if not splits_file.is_file():
        raise UserError(f"{splits_file} does not exist, so the validation cases of fold {fold} are unknown; train "
                        f"the model first, set nnUNet_preprocessed to the folder it was trained with, or pass "
                        f"--images DIR --labels DIR")
    splits = json.loads(splits_file.read_text())
    if not isinstance(fold, int) or not 0 <= fold < len(splits):
        raise UserError(f"{splits_file} has {len(splits)} split(s) and no fold {fold}; pass --images DIR "
                        f"--labels DIR")
    names = sorted(splits[fold]["val"])
    raw = _nnunet_folder("nnUNet_raw") / dataset
    if "dataset" in dataset_json:  # nnU-Net's explicit file lists, paths relative to the raw dataset folder
        listed = dataset_json["dataset"]
        missing = [name for name in names if name not in listed]
        if missing:
            raise UserError(f"validation case(s) {', '.join(missing[:5])} are not listed in the model's dataset.json")
        return [LabelledCase(name, tuple(_raw_path(raw, p) for p in listed[name]["images"]),
                             _raw_path(raw, listed[name]["label"])) for name in names]
    cases = _cases_in_folders(raw / "imagesTr", raw / "labelsTr", dataset_json, names)
    return [cases[name] for name in names]


def folder_cases(images: Path, labels: Path, dataset_json: dict) -> list[LabelledCase]:
    """Every case of ``images`` (nnU-Net naming); each must have its label in ``labels``."""
    for folder, option in ((images, "--images"), (labels, "--labels")):
        require_folder(folder, f"{option} folder")
    cases = _cases_in_folders(images, labels, dataset_json, None)
    if not cases:
        raise UserError(f"no images named CASE_0000{dataset_json['file_ending']} in {images} (nnU-Net's naming)")
    return [cases[name] for name in sorted(cases)]


def check_case_files(cases: list[LabelledCase]) -> None:
    """Read every NIfTI image and label completely (gzip CRC, data size, header) before any case is analysed.

    nnU-Net's readers accept some damaged files (a truncated ``.nii.gz`` can come back partly filled), which would
    only show as a lower Dice; other formats are left to nnU-Net's reader."""
    for case in cases:
        for path in (*case.image_files, case.label_file):
            if is_nifti_name(path):
                try:
                    load_nifti(path)
                except UserError as error:
                    raise UserError(f"case {case.name}: {error} ({path})") from None


def preprocess(model: LoadedModel, case: LabelledCase) -> PreprocessedCase:
    """The case through the model's own nnU-Net preprocessor (transpose, crop, normalise, resample)."""
    predictor = model.predictor
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    try:
        with quiet_simpleitk():
            data, seg, properties = preprocessor.run_case([str(p) for p in case.image_files], str(case.label_file),
                                                          predictor.plans_manager, predictor.configuration_manager,
                                                          predictor.dataset_json)
    except Exception as error:  # unreadable file, image/label shape mismatch, ...
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot preprocess case {case.name} ({type(error).__name__}: {message})") from None
    labels = np.maximum(np.asarray(seg[0]), 0).astype(np.int16)
    num_labels = _num_labels(model)
    if labels.max() >= num_labels:
        raise UserError(f"case {case.name}: label {int(labels.max())} in {case.label_file}, but the model knows "
                        f"labels 0-{num_labels - 1}")
    return PreprocessedCase(case.name, torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), labels,
                            _preprocessed_spacing(model, properties))


def structures(model: LoadedModel) -> dict[str, int]:
    """Foreground labels of the model by name (no background, no ignore label)."""
    labels = {name: int(value) for name, value in model.model_labels.items() if not isinstance(value, list)}
    if any(isinstance(value, list) for value in model.model_labels.values()):
        raise UserError(f"the model in {model.folder} is region-based (labels {model.model_labels}); analyze "
                        f"needs a model that predicts one label per voxel")
    ignore = model.predictor.label_manager.ignore_label
    return {name: value for name, value in sorted(labels.items(), key=lambda item: item[1])
            if value != 0 and value != ignore}


def label_names(model: LoadedModel) -> dict[int, str]:
    """Every label value of :func:`structures` plus background, value → name."""
    background = next((name for name, value in model.model_labels.items() if value == 0), "background")
    return {0: background, **{value: name for name, value in structures(model).items()}}


def _num_labels(model: LoadedModel) -> int:
    return max(label_names(model)) + 1


def _preprocessed_spacing(model: LoadedModel, properties: dict) -> tuple[float, ...]:
    """The target spacing; 2d plans leave the slice axis (the first after nnU-Net's transpose) as it was."""
    predictor = model.predictor
    spacing = [float(s) for s in predictor.configuration_manager.spacing]
    if len(spacing) == 2:
        spacing = [float(properties["spacing"][predictor.plans_manager.transpose_forward[0]])] + spacing
    return tuple(spacing)


def _cases_in_folders(images: Path, labels: Path, dataset_json: dict,
                      wanted: list[str] | None) -> dict[str, LabelledCase]:
    ending = dataset_json["file_ending"]
    channels = len(dataset_json.get("channel_names", dataset_json.get("modality", {"0": ""})))
    if not images.is_dir():
        raise UserError(f"image folder {images} does not exist (set nnUNet_raw to the folder the model's dataset "
                        f"was planned from, or pass --images DIR --labels DIR)")
    pattern = re.compile(r"^(.+)_(\d{4})" + re.escape(ending) + "$")
    found: dict[str, dict[int, Path]] = {}
    for path in images.iterdir():
        match = pattern.match(path.name)
        if match:
            found.setdefault(match.group(1), {})[int(match.group(2))] = path
    names = sorted(found) if wanted is None else wanted
    problems = []
    for name in names:
        missing_channels = [c for c in range(channels) if c not in found.get(name, {})]
        if missing_channels:
            problems.append(f"{name}: no image {name}_{missing_channels[0]:04d}{ending} in {images}")
        elif not (labels / f"{name}{ending}").is_file():
            problems.append(f"{name}: no label {name}{ending} in {labels}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(f"{len(problems)} case(s) incomplete — {'; '.join(problems[:3])}{more}")
    return {name: LabelledCase(name, tuple(found[name][c] for c in range(channels)), labels / f"{name}{ending}")
            for name in names}


def _raw_path(raw: Path, listed: str) -> Path:
    path = Path(os.path.expandvars(listed))
    return path if path.is_absolute() else raw / path


def _nnunet_folder(variable: str) -> Path:
    """The folder the model was trained with; labelled folders are the way round a missing one."""
    return nnunet_folder(variable, alternative="pass labelled cases with --images DIR --labels DIR")

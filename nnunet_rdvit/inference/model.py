"""A trained nnU-Net model folder, checked and loaded into nnU-Net's own ``nnUNetPredictor``.

Everything a user can get wrong about the folder is checked before any volume is touched, each with a message
that says what to pass instead. The predictor does the loading, fold ensembling, sliding window and mirroring.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from nnunet_rdvit.acdc_labels import LABELS, LV, MYO
from nnunet_rdvit.devices import resolve_device
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.paths import require_folder
from nnunet_rdvit.tile_step import tile_step_problem

# Readers whose arrays are the file's voxel array with the axes reversed (z, y, x), which is what
# segmentation.py hands to nnU-Net. Reorienting readers would need the reorientation undone too.
SUPPORTED_READERS = ("SimpleITKIO", "NibabelIO")
_FOLD = re.compile(r"^fold_\d+$")
# Accepted names (lower case) per ACDC label value: this package's (acdc_labels.LABELS), then those of nnU-Net's
# own Dataset027_ACDC conversion.
_DATASET027_NAMES = {MYO: "mlv", LV: "lvc"}
_ACDC_LABEL_NAMES = {value: {name.lower()} | ({_DATASET027_NAMES[value]} if value in _DATASET027_NAMES else set())
                     for name, value in LABELS.items()}


@dataclass
class LoadedModel:
    predictor: object  # nnunetv2's nnUNetPredictor, initialised
    folder: Path
    folds: tuple[int | str, ...]
    checkpoint: str
    trainer: str
    configuration: str
    device: torch.device
    model_labels: dict[str, int]  # names as in the model's dataset.json

    def describe(self) -> dict:
        predictor = self.predictor
        return {"folder": str(self.folder), "trainer": self.trainer, "configuration": self.configuration,
                "folds": list(self.folds), "checkpoint": self.checkpoint, "device": str(self.device),
                "mirroring": bool(predictor.use_mirroring and predictor.allowed_mirroring_axes),
                "tile_step_size": predictor.tile_step_size}


def available_folds(folder: Path, checkpoint: str) -> list[int | str]:
    """``fold_N`` folders holding ``checkpoint``, in order (``fold_all`` is used only when asked for, as in
    nnU-Net)."""
    return sorted(int(p.name[5:]) for p in folder.iterdir() if _FOLD.match(p.name) and (p / checkpoint).is_file())


def load_model(folder: Path, folds: Sequence[int | str] | None = None, checkpoint: str = "checkpoint_final.pth",
               device: str = "auto", mirroring: bool = True, step_size: float = 0.5,
               acdc_nifti: bool = True) -> LoadedModel:
    """Check ``folder`` and load ``folds`` (default: every fold with ``checkpoint``) for ensembled prediction.

    ``acdc_nifti`` checks what ``predict``'s own NIfTI reading and cardiac indices need (ACDC labels, one
    channel, a NIfTI reader); callers that read cases with nnU-Net's own reader and preprocessor pass False.
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    dataset_json, plans = _check_folder(folder)
    reader = plans.get("image_reader_writer", "SimpleITKIO")
    if acdc_nifti:
        _check_labels_and_channels(folder, dataset_json)
    if acdc_nifti and reader not in SUPPORTED_READERS:
        raise UserError(f"the model in {folder} was planned with the {reader} reader; predict supports models "
                        f"planned with {' or '.join(SUPPORTED_READERS)} (nnU-Net's defaults for NIfTI)")
    folds = _resolve_folds(folder, folds, checkpoint)
    torch_device = resolve_device(device)
    if tile_step_problem(step_size):
        raise UserError(tile_step_problem(step_size))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net narrates device choice and trainer search
            predictor = nnUNetPredictor(tile_step_size=step_size, use_gaussian=True, use_mirroring=mirroring,
                                        perform_everything_on_device=True, device=torch_device, verbose=False,
                                        allow_tqdm=False)
            predictor.initialize_from_trained_model_folder(str(folder), tuple(folds), checkpoint)
    except Exception as error:  # a trainer nnU-Net cannot find, a damaged checkpoint, weights for other plans
        missing = re.search(r"Could not find requested nnunet trainer (\S+)", str(error))
        if missing:
            raise UserError(f"the model's trainer class {missing.group(1)} cannot be found: install the package "
                            f"that defines it, or set nnUNet_extTrainer to the folder with its module") from None
        raise UserError(f"cannot load the model from {folder} ({type(error).__name__}: {_first_sentence(error)}); "
                        f"is a checkpoint damaged or from another model?") from None
    configuration = folder.name.split("__")[-1] if folder.name.count("__") == 2 else "unknown"
    return LoadedModel(predictor, folder, tuple(folds), checkpoint, predictor.trainer_name, configuration,
                       torch_device, dict(dataset_json["labels"]))


def _check_folder(folder: Path) -> tuple[dict, dict]:
    require_folder(folder, "model folder")
    contents = {}
    for name in ("dataset.json", "plans.json"):
        if not (folder / name).is_file():
            hint = _model_folders_inside(folder)
            raise UserError(f"{folder} is not a trained nnU-Net model folder: {name} is missing "
                            + (f"(it holds model folders: {hint}; pass one of them)" if hint else
                               "(pass the folder named TRAINER__PLANS__CONFIGURATION inside nnUNet_results/DatasetXXX)"))
        try:
            contents[name] = json.loads((folder / name).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{folder / name} is not valid JSON ({error})") from None
    return contents["dataset.json"], contents["plans.json"]


def _model_folders_inside(folder: Path) -> str:
    inside = sorted(p.name for p in folder.glob("*__*__*") if (p / "plans.json").is_file())
    return ", ".join(inside)


def _check_labels_and_channels(folder: Path, dataset_json: dict) -> None:
    labels = dataset_json.get("labels", {})
    if not is_acdc_label_set(labels):
        shown = ", ".join(f"{value} {name}" for name, value in labels.items())
        raise UserError(f"the model in {folder} predicts labels {shown or 'none'}, not ACDC's 1 RV, 2 MYO, 3 LV: "
                        f"predict names its outputs RV/MYO/LV and computes cardiac indices from them, so it takes "
                        f"only ACDC-style models; segment with this model through nnUNetv2_predict instead")
    channels = dataset_json.get("channel_names", dataset_json.get("modality", {}))
    if len(channels) != 1:
        raise UserError(f"the model in {folder} expects {len(channels)} input channels "
                        f"({', '.join(map(str, channels.values()))}); predict gives it one volume per case "
                        f"(single-channel cine MRI)")


def is_acdc_label_set(labels: dict) -> bool:
    """True if the model's ``dataset.json`` labels are ACDC's: background 0 and RV 1, MYO 2, LV 3 under this
    package's names or those of nnU-Net's own ACDC conversion (Dataset027: MLV, LVC), and nothing else."""
    if any(not isinstance(value, int) or isinstance(value, bool) for value in labels.values()):
        return False  # region-based (lists) or malformed
    by_value = {value: str(name).lower() for name, value in labels.items()}
    return len(by_value) == len(labels) and by_value.keys() == _ACDC_LABEL_NAMES.keys() and all(
        by_value[value] in _ACDC_LABEL_NAMES[value] for value in by_value)


def _resolve_folds(folder: Path, folds: Sequence[int | str] | None, checkpoint: str) -> list[int | str]:
    if checkpoint in ("", ".", "..") or Path(checkpoint).name != checkpoint:
        raise UserError(f"-chk {checkpoint!r} is not a file name: it names the checkpoint file inside each "
                        f"fold_N (e.g. checkpoint_best.pth); pass the model folder with -m")
    available = available_folds(folder, checkpoint)
    if folds is None:
        if not available:
            raise UserError(f"no trained fold in {folder}: no fold_N/{checkpoint}" + _other_checkpoints(folder))
        return available
    wanted = [f if f == "all" else int(f) for f in folds]
    repeated = sorted({str(f) for f in wanted if wanted.count(f) > 1})
    if repeated:
        raise UserError(f"fold(s) {', '.join(repeated)} given more than once; an ensemble takes each fold once")
    missing = [f for f in wanted if not (folder / f"fold_{f}" / checkpoint).is_file()]
    if missing:
        raise UserError(f"fold(s) {', '.join(map(str, missing))} have no {checkpoint} in {folder} (available: "
                        f"{', '.join(map(str, available)) or 'none'})")
    return wanted


def _other_checkpoints(folder: Path) -> str:
    """A hint naming the checkpoints that are there (only non-empty files: an empty one is no checkpoint)."""
    found = sorted(p for p in folder.glob("fold_*/*.pth") if p.is_file() and p.stat().st_size > 0)
    if not found:
        return " (no fold_N holds any .pth checkpoint: is training unfinished, or is this another folder?)"
    names = sorted({p.name for p in found})
    folds = sorted({p.parent.name for p in found})
    suggested = next((name for name in ("checkpoint_final.pth", "checkpoint_best.pth") if name in names), names[0])
    unfinished = "" if "checkpoint_final.pth" in names else "training unfinished? "
    return f" (found {', '.join(names)} in {', '.join(folds)}: {unfinished}pass -chk {suggested} to use it)"


def _first_sentence(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(error).__name__

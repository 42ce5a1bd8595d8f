"""What ``predict`` was asked to segment: NIfTI files, folders of them, and patient folders with ED/ES frames.

Nothing is opened here except ``Info.cfg`` files; a bad volume is found when it is read, so one bad case
cannot stop the others. Problems that concern a whole patient (a broken ``Info.cfg``, a frame file that is
not there) are collected as failures of that patient, and the rest still runs.

Rules, per ``-i`` path:

* a NIfTI file is one case; with ``--ed/--es`` it is a 4D cine file and those two frames are a patient;
* a folder with ``Info.cfg`` is a patient folder (ACDC layout): its ED and ES frames are
  ``*_frameNN.nii.gz`` (or frames of a ``*_4d.nii.gz``); ``--ed/--es`` override ``Info.cfg``;
* a folder holding patient folders (one or two levels down, e.g. the ACDC root with ``training/``) is every
  patient in it, at either level; NIfTI files directly in it are cases too;
* any other folder: each NIfTI file in it is a case (``*_gt`` label files are skipped); with ``--ed/--es``
  the folder is one patient whose frames are found by name.

A ``*_gt`` file given by name is refused: it is a label map, not an image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from nnunet_rdvit.dataset_conversion.acdc_source import parse_info_cfg
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.inference.nifti_io import is_nifti_name, nifti_stem
from nnunet_rdvit.paths import require_file_or_folder

INFO_FILE = "Info.cfg"
PHASES = ("ED", "ES")


@dataclass(frozen=True)
class VolumeJob:
    """One 3D volume to segment and where its outputs go."""

    case_id: str  # stem of every output file of this volume
    source: Path
    frame: int | None = None  # 1-based frame of a 4D source; None for a 3D file
    patient: str | None = None  # outputs go to OUTDIR/<patient>/ when set
    phase: str | None = None  # "ED" or "ES"


@dataclass(frozen=True)
class PatientJob:
    name: str
    frames: dict[str, int]  # phase -> frame number
    frames_from: str  # "Info.cfg" or "--ed/--es"
    volumes: dict[str, VolumeJob]  # phase -> volume


@dataclass
class Inputs:
    singles: list[VolumeJob] = field(default_factory=list)
    patients: list[PatientJob] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input name, message)

    @property
    def volumes(self) -> list[VolumeJob]:
        return [v for p in self.patients for v in p.volumes.values()] + self.singles


def discover_inputs(paths: Sequence[Path], ed: int | None = None, es: int | None = None) -> Inputs:
    """Turn ``-i`` paths into volumes and patients; :class:`UserError` only for problems with the paths themselves."""
    if (ed is None) != (es is None):
        raise UserError("--ed and --es go together: give both frame numbers or neither")
    if ed is not None and (ed < 1 or es < 1 or ed == es):
        raise UserError(f"--ed {ed} --es {es}: frame numbers are 1-based and must differ")
    flags = {"ED": ed, "ES": es} if ed is not None else None
    inputs = Inputs()
    for path in paths:
        if require_file_or_folder(path, "input") == "a file":
            _check_not_labels(path)
            _add_file(inputs, path, flags)
            continue
        try:
            _add_folder(inputs, path, flags)
        except OSError as error:
            raise UserError(f"cannot read the input folder {path} ({error.strerror or error})") from None
    _check_unique_outputs(inputs)
    return inputs


def _add_folder(inputs: Inputs, path: Path, flags: dict[str, int] | None) -> None:
    patient_dirs = find_patient_folders(path)
    files = [f for f in sorted(path.iterdir()) if f.is_file() and is_nifti_name(f) and not is_label_name(f)]
    if patient_dirs:
        for folder in patient_dirs:
            _add_patient_folder(inputs, folder, flags)
        if patient_dirs != [path]:  # images beside the patient folders are cases too
            for file in files:
                _add_file(inputs, file, flags)
    elif flags is not None:
        _add_patient_folder(inputs, path, flags)
    elif not files:
        raise UserError(f"{path} has no NIfTI files (.nii, .nii.gz) and no patient folders with {INFO_FILE} "
                        f"(searched two levels down); pass image files or patient folders")
    else:
        inputs.singles += [VolumeJob(nifti_stem(f), f) for f in files]


def find_patient_folders(path: Path) -> list[Path]:
    """``path`` itself if it holds ``Info.cfg``, else the folders with ``Info.cfg`` one or two levels down (a
    patient folder's own sub-folders are not searched), by name."""
    if (path / INFO_FILE).is_file():
        return [path]
    found = []
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        if (child / INFO_FILE).is_file():
            found.append(child)
        else:
            found += [p.parent for p in child.glob(f"*/{INFO_FILE}") if p.is_file()]
    return sorted(found, key=lambda folder: (folder.name, folder))


def is_label_name(path: Path) -> bool:
    """ACDC's ground-truth label files end in ``_gt`` (``patient001_frame01_gt.nii.gz``)."""
    return nifti_stem(path).lower().endswith("_gt")


def _check_not_labels(path: Path) -> None:
    if is_label_name(path):
        image = path.with_name(nifti_stem(path)[:-3] + path.name[len(nifti_stem(path)):])
        raise UserError(f"{path} is a ground-truth label file (its name ends in _gt), not an image; pass the image "
                        f"{image.name} instead")


def _add_file(inputs: Inputs, path: Path, flags: dict[str, int] | None) -> None:
    if flags is None:
        inputs.singles.append(VolumeJob(nifti_stem(path), path))
    else:
        name = nifti_stem(path)
        inputs.patients.append(_patient(name, flags, "--ed/--es", {p: (path, flags[p]) for p in PHASES}))


def read_frames(folder: Path) -> tuple[dict[str, int] | None, str | None]:
    """ED and ES frame numbers from ``folder/Info.cfg`` (parsed by the ACDC converter's reader), or a problem."""
    info_path = folder / INFO_FILE
    if not info_path.is_file():
        return None, f"{INFO_FILE} is missing; give the frames with --ed N --es M"
    info, problems = parse_info_cfg(info_path.read_text(errors="replace"), group_required=False)
    if problems:
        return None, f"{INFO_FILE}: {'; '.join(problems)}"
    return {"ED": info["ed"], "ES": info["es"]}, None


def frame_file(folder: Path, frame: int, suffix: str = "") -> Path | None:
    """The one ``*_frameNN<suffix>.nii[.gz]`` in ``folder`` (``suffix="_gt"`` for labels), or None."""
    pattern = re.compile(rf".*_frame0*{frame}{suffix}\.nii(\.gz)?", re.IGNORECASE)
    matches = [f for f in sorted(folder.iterdir()) if f.is_file() and pattern.fullmatch(f.name)]
    return matches[0] if len(matches) == 1 else None


def _add_patient_folder(inputs: Inputs, folder: Path, flags: dict[str, int] | None) -> None:
    if flags is not None:
        frames, frames_from = flags, "--ed/--es"
    else:
        frames, problem = read_frames(folder)
        frames_from = INFO_FILE
        if problem:
            inputs.failures.append((folder.name, problem))
            return
    cine = [f for f in sorted(folder.glob("*_4d.nii*")) if is_nifti_name(f)]
    sources = {}
    for phase in PHASES:
        image = frame_file(folder, frames[phase])
        if image is not None:
            sources[phase] = (image, None)
        elif len(cine) == 1:
            sources[phase] = (cine[0], frames[phase])
        else:
            inputs.failures.append((folder.name, f"no image for the {phase} frame {frames[phase]}: expected one "
                                                 f"{folder.name}_frame{frames[phase]:02d}.nii.gz or one 4D "
                                                 f"{folder.name}_4d.nii.gz in {folder}"))
            return
    inputs.patients.append(_patient(folder.name, frames, frames_from, sources))


def _patient(name: str, frames: dict[str, int], frames_from: str,
             sources: dict[str, tuple[Path, int | None]]) -> PatientJob:
    volumes = {phase: VolumeJob(f"{name}_frame{frames[phase]:02d}", source, frame, name, phase)
               for phase, (source, frame) in sources.items()}
    return PatientJob(name, dict(frames), frames_from, volumes)


def _check_unique_outputs(inputs: Inputs) -> None:
    seen: dict[tuple[str | None, str], Path] = {}
    for volume in inputs.volumes:
        key = (volume.patient, volume.case_id)
        if key in seen:
            where = f"{volume.patient}/{volume.case_id}" if volume.patient else volume.case_id
            raise UserError(f"{seen[key]} and {volume.source} would both write {where}.nii.gz; rename one or run "
                            f"them separately")
        seen[key] = volume.source
    names = [p.name for p in inputs.patients]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"patient name(s) {', '.join(duplicates)} appear more than once among the inputs; their "
                        f"outputs would collide")

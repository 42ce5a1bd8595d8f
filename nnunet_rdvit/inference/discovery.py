"""What ``predict`` was asked to segment: NIfTI files, folders of them, and patient folders with ED/ES frames.

Nothing is opened here except ``Info.cfg`` files; a bad volume is found when it is read, so one bad case
cannot stop the others. Problems that concern a whole patient (a broken ``Info.cfg``, a frame file that is
not there) are collected as failures of that patient, and the rest still runs.

Rules, per ``-i`` path:

* a NIfTI file is one case; with ``--ed/--es`` it is a 4D cine file and those two frames are a patient;
* a folder with ``Info.cfg`` is a patient folder (ACDC layout): its ED and ES frames are
  ``*_frameNN.nii.gz`` (or frames of a ``*_4d.nii.gz``); ``--ed/--es`` override ``Info.cfg``;
* a folder holding patient folders (up to two levels down, e.g. the ACDC root with ``training/``) is every
  patient in it;
* any other folder: each NIfTI file in it is a case (``*_gt`` label files are skipped); with ``--ed/--es``
  the folder is one patient whose frames are found by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from nnunet_rdvit.dataset_conversion.acdc_source import parse_info_cfg
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.inference.nifti_io import is_nifti_name, nifti_stem

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
        if not path.exists():
            raise UserError(f"input {path} does not exist")
        if path.is_file():
            if flags is None:
                inputs.singles.append(VolumeJob(nifti_stem(path), path))
            else:
                name = nifti_stem(path)
                inputs.patients.append(_patient(name, flags, "--ed/--es", {p: (path, flags[p]) for p in PHASES}))
            continue
        patient_dirs = find_patient_folders(path)
        if patient_dirs:
            for folder in patient_dirs:
                _add_patient_folder(inputs, folder, flags)
        elif flags is not None:
            _add_patient_folder(inputs, path, flags)
        else:
            files = [f for f in sorted(path.iterdir()) if f.is_file() and is_nifti_name(f)
                     and not nifti_stem(f).endswith("_gt")]
            if not files:
                raise UserError(f"{path} has no NIfTI files (.nii, .nii.gz) and no patient folders with {INFO_FILE}")
            inputs.singles += [VolumeJob(nifti_stem(f), f) for f in files]
    _check_unique_outputs(inputs)
    return inputs


def find_patient_folders(path: Path) -> list[Path]:
    """``path`` itself if it holds ``Info.cfg``, else the folders with ``Info.cfg`` one or two levels down."""
    if (path / INFO_FILE).is_file():
        return [path]
    found = sorted(p.parent for p in path.glob(f"*/{INFO_FILE}"))
    return found or sorted(p.parent for p in path.glob(f"*/*/{INFO_FILE}"))


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

"""Reading and validating a raw ACDC folder (Bernard et al., IEEE TMI 2018) before anything is converted.

Every patient is checked completely and all problems are collected, so one run tells the user about every
bad case at once instead of failing on the first one. The source is only read, never modified.

Layout: ``<raw_dir>/training/patientNNN/`` and optionally ``<raw_dir>/testing/patientNNN/``, each holding
``Info.cfg`` and, for the ED and ES frames it names, ``patientNNN_frameXX.nii.gz`` plus the label
``patientNNN_frameXX_gt.nii.gz`` (0 background, 1 RV, 2 MYO, 3 LV). Training patients need the labels and a
``Group``; testing patients may lack both. Other files (``MANDATORY_CITATION.md``, the 4D cine
``patientNNN_4d.nii.gz``) are ignored.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_rdvit.acdc_labels import GROUPS, LABELS
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.paths import kind_of, require_folder

SUBSETS = ("training", "testing")
LABEL_VALUES = frozenset(LABELS.values())
_PATIENT_DIR = re.compile(r"^patient\d{3}$")


@dataclass(frozen=True)
class SourceFile:
    path: Path
    relpath: str  # relative to the raw ACDC folder, POSIX separators: identifies the source in the manifest
    sha256: str


@dataclass(frozen=True)
class AcdcCase:
    case_id: str  # patientNNN_frameXX, nnU-Net's case identifier
    patient: str
    subset: str
    phase: str  # "ED" or "ES"
    frame: int
    image: SourceFile
    label: SourceFile | None


@dataclass(frozen=True)
class AcdcPatient:
    name: str
    subset: str
    info: dict  # group, height, weight, nb_frames (None where Info.cfg leaves them out)
    info_file: SourceFile
    cases: tuple[AcdcCase, ...]


def read_acdc_source(raw_dir: Path, progress: bool = True) -> list[AcdcPatient]:
    """All patients of ``raw_dir``, fully validated; raises one :class:`UserError` listing every problem."""
    from tqdm import tqdm

    patient_dirs = _find_patient_dirs(raw_dir)
    patients: list[AcdcPatient] = []
    problems: list[str] = []
    for subset, folder in tqdm(patient_dirs, desc="Checking ACDC", unit="patient", disable=not progress):
        patient, patient_problems = _read_patient(raw_dir, subset, folder)
        problems += [f"{subset}/{folder.name}: {problem}" for problem in patient_problems]
        if patient is not None:
            patients.append(patient)

    if problems:
        bad = len({problem.split(":", 1)[0] for problem in problems})
        raise UserError(
            f"{raw_dir} is not a valid ACDC folder ({len(problems)} problem(s) in {bad} patient(s); nothing was "
            f"written). Fix or remove these cases and run again:\n  " + "\n  ".join(problems))
    n_training = sum(1 for patient in patients if patient.subset == "training")
    if n_training < 5:
        raise UserError(f"{raw_dir / 'training'} has {n_training} patient folder(s); a 5-fold patient split "
                        f"needs at least 5")
    return patients


def _find_patient_dirs(raw_dir: Path) -> list[tuple[str, Path]]:
    require_folder(raw_dir, "ACDC folder")
    for subset in SUBSETS:
        kind = kind_of(raw_dir / subset)
        if kind != "a folder" and not kind.startswith("missing"):
            raise UserError(f"{raw_dir / subset} is {kind}; the ACDC {subset}/ entry must be a folder of patient "
                            "folders")
    if not (raw_dir / "training").is_dir():
        if any(_PATIENT_DIR.match(entry.name) for entry in raw_dir.iterdir() if entry.is_dir()):
            raise UserError(f"{raw_dir} holds patient folders itself; pass the ACDC folder that contains "
                            f"training/ (here: {raw_dir.parent})")
        raise UserError(f"{raw_dir} has no training/ folder; pass the ACDC folder that contains training/ "
                        f"(and optionally testing/)")
    found = []
    names_seen: dict[str, str] = {}
    for subset in SUBSETS:
        subset_dir = raw_dir / subset
        if not subset_dir.is_dir():
            continue
        for folder in sorted(subset_dir.iterdir()):
            if folder.is_dir() and _PATIENT_DIR.match(folder.name):
                if folder.name in names_seen:
                    raise UserError(f"{folder.name} is in both {names_seen[folder.name]}/ and {subset}/ of "
                                    f"{raw_dir}; a patient must be in one of them")
                names_seen[folder.name] = subset
                found.append((subset, folder))
    return found


def _read_patient(raw_dir: Path, subset: str, folder: Path) -> tuple[AcdcPatient | None, list[str]]:
    problems: list[str] = []
    info_path = folder / "Info.cfg"
    if not info_path.is_file():
        kind = kind_of(info_path)
        return None, ["Info.cfg is missing" if kind == "missing" else f"Info.cfg is {kind}, not a text file"]
    info_bytes = info_path.read_bytes()
    info, info_problems = parse_info_cfg(info_bytes.decode("utf-8", errors="replace"),
                                         group_required=subset == "training")
    if info_problems:
        return None, [f"Info.cfg: {problem}" for problem in info_problems]

    name = folder.name
    frames = {"ED": info.pop("ed"), "ES": info.pop("es")}
    expected = {f"{name}_frame{frame:02d}{suffix}.nii.gz" for frame in frames.values() for suffix in ("", "_gt")}
    unexpected = sorted(entry.name for entry in folder.iterdir()
                        if re.fullmatch(rf"{name}_frame\d+(_gt)?\.nii\.gz", entry.name) and entry.name not in expected)
    if unexpected:
        problems.append(f"{', '.join(unexpected)} not named as ED ({frames['ED']}) or ES ({frames['ES']}) in "
                        f"Info.cfg")

    cases = []
    for phase, frame in frames.items():
        stem = f"{name}_frame{frame:02d}"
        image, image_problems = _check_volume(raw_dir, folder / f"{stem}.nii.gz", f"{phase} frame {frame}",
                                              is_label=False, required=True)
        label_required = subset == "training"
        label, label_problems = _check_volume(raw_dir, folder / f"{stem}_gt.nii.gz", f"{phase} frame {frame}",
                                              is_label=True, required=label_required)
        problems += image_problems + label_problems
        if image is not None and label is not None:
            problems += [f"{stem}_gt.nii.gz: {p}" for p in _geometry_mismatches(image[1], label[1])]
        if image is not None:
            cases.append(AcdcCase(stem, name, subset, phase, frame, image[0], label[0] if label else None))
    if problems:
        return None, problems
    info_file = SourceFile(info_path, info_path.relative_to(raw_dir).as_posix(),
                           hashlib.sha256(info_bytes).hexdigest())
    return AcdcPatient(name, subset, info, info_file, tuple(cases)), []


def parse_info_cfg(text: str, group_required: bool = True) -> tuple[dict, list[str]]:
    """``Info.cfg`` (``Key: value`` lines) -> ``{ed, es, group, height, weight, nb_frames}`` and problems.

    ED, ES (frame numbers) and, for training patients, Group are required; Height, Weight and NbFrame are
    optional but must be numbers when present.
    """
    values: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            problems.append(f"line {number} {line.strip()!r} is not 'Key: value'")
        elif key in values:
            problems.append(f"{key} appears twice")
        else:
            values[key] = value

    def number(key: str, kind: type, required: bool) -> int | float | None:
        if key not in values:
            if required:
                problems.append(f"{key} is missing")
            return None
        try:
            return kind(values[key])
        except ValueError:
            problems.append(f"{key} {values[key]!r} is not {'an integer' if kind is int else 'a number'}")
            return None

    info = {
        "ed": number("ED", int, True),
        "es": number("ES", int, True),
        "group": values.get("Group"),
        "height": number("Height", float, False),
        "weight": number("Weight", float, False),
        "nb_frames": number("NbFrame", int, False),
    }
    if info["group"] is None and group_required:
        problems.append("Group is missing")
    elif info["group"] is not None and info["group"] not in GROUPS:
        problems.append(f"Group {info['group']!r} is not one of {', '.join(GROUPS)}")
    for key in ("ed", "es"):
        frame = info[key]
        if frame is not None and (frame < 1 or (info["nb_frames"] is not None and frame > info["nb_frames"])):
            problems.append(f"{key.upper()} {frame} is outside frames 1..{info['nb_frames'] or '?'}")
    if info["ed"] is not None and info["ed"] == info["es"]:
        problems.append(f"ED and ES name the same frame ({info['ed']})")
    return info, problems


def _check_volume(raw_dir: Path, path: Path, role: str, is_label: bool,
                  required: bool) -> tuple[tuple[SourceFile, object] | None, list[str]]:
    """Read one NIfTI completely (gzip CRC included); check it is 3D and, for labels, holds only 0..3."""
    import nibabel as nib

    what = "label" if is_label else "image"
    if not path.is_file():
        kind = kind_of(path)
        if kind != "missing":
            return None, [f"{path.name} is {kind}, not a NIfTI file ({what} of the {role} named in Info.cfg)"]
        return None, [f"{path.name} is missing ({what} of the {role} named in Info.cfg)"] if required else []
    data = path.read_bytes()
    source = SourceFile(path, path.relative_to(raw_dir).as_posix(), hashlib.sha256(data).hexdigest())
    try:
        # gzip.decompress checks the CRC, so corruption anywhere in the file is caught, not only in the header.
        nifti = nib.Nifti1Image.from_bytes(gzip.decompress(data))
        array = np.asanyarray(nifti.dataobj)
    except Exception as error:  # any failure to parse means the same to the user: the file is unreadable
        return None, [f"{path.name} is not a readable gzip-compressed NIfTI-1 file ({type(error).__name__}: "
                      f"{error})"]
    if array.ndim != 3:
        return None, [f"{path.name} is {array.ndim}D with shape {array.shape}; a 3D volume is expected"]
    if is_label:
        values = np.unique(array)
        bad = [v for v in values.tolist() if v not in LABEL_VALUES]  # 1.0 counts as 1; 1.5 and NaN do not
        if bad:
            return None, [f"{path.name} has label values {_short_list(bad)} outside 0..3 (0 bg, 1 RV, 2 MYO, 3 LV)"]
    elif not np.isfinite(array).all():
        return None, [f"{path.name} contains NaN or infinite intensities"]
    return (source, nifti), []


def _geometry_mismatches(image, label) -> list[str]:
    """What differs between image and label grids: shape, spacing, origin, direction (as nnU-Net checks)."""
    problems = []
    if image.shape != label.shape:
        problems.append(f"shape {label.shape} differs from the image's {image.shape}")
    image_spacing, label_spacing = (np.array(x.header.get_zooms()[:3], dtype=float) for x in (image, label))
    if not np.allclose(image_spacing, label_spacing, rtol=1e-5, atol=1e-6):
        problems.append(f"spacing {_rounded(label_spacing)} differs from the image's {_rounded(image_spacing)}")
    if not np.allclose(image.affine[:3, 3], label.affine[:3, 3], atol=1e-3):
        problems.append(f"origin {_rounded(label.affine[:3, 3])} differs from the image's "
                        f"{_rounded(image.affine[:3, 3])}")
    image_dir, label_dir = (x.affine[:3, :3] / np.linalg.norm(x.affine[:3, :3], axis=0) for x in (image, label))
    if not np.allclose(image_dir, label_dir, atol=1e-4):
        problems.append("direction (orientation) differs from the image's")
    return problems


def _rounded(values: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in values)


def _short_list(values: list) -> str:
    shown = ", ".join(str(v) for v in values[:5])
    return shown + (f" and {len(values) - 5} more" if len(values) > 5 else "")

"""Convert the ACDC challenge data into an nnU-Net v2 raw dataset, safely and repeatably.

Data: O. Bernard, A. Lalande, C. Zotti, F. Cervenansky et al., "Deep Learning Techniques for Automatic MRI
Cardiac Multi-structures Segmentation and Diagnosis: Is the Problem Solved?", IEEE TMI 37(11):2514-2525,
2018, doi:10.1109/TMI.2018.2837502. Every use of the data must cite it.

Why not nnU-Net's own ``Dataset027_ACDC`` script: it crashes on nnunetv2 2.8.x, validates nothing, writes
into the target folder piecemeal and leaves the split only in the preprocessed folder. This converter

* checks the whole source first and reports every bad case in one error, writing nothing (see
  :mod:`acdc_source`);
* copies the NIfTI bytes unchanged (no resampling), images with the ``_0000`` channel suffix;
* writes the patient-grouped 5-fold ``splits_final.json`` with Dataset027's semantics into the raw dataset
  folder (nnU-Net's planner copies it to the preprocessed folder) and, when ``nnUNet_preprocessed`` is set,
  straight into the preprocessed folder too, together with ``case_metadata.json`` (patient, phase, group);
* builds the dataset in a hidden sibling folder and renames it into place, so an interrupted run never
  leaves half a dataset;
* records a manifest (SHA-256 of every source and output file): a rerun on the same source is a no-op,
  and a folder holding anything else (another dataset, or this one edited since) is only replaced with
  ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from nnunet_rdvit.acdc_labels import LABELS
from nnunet_rdvit.atomic import write_json_atomic
from nnunet_rdvit.dataset_conversion.acdc_source import AcdcPatient, SourceFile, read_acdc_source
from nnunet_rdvit.dataset_conversion.metadata import CASE_METADATA_FILE
from nnunet_rdvit.dataset_conversion.splits import patient_grouped_splits
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.nnunet_folders import folder_variable
from nnunet_rdvit.paths import creatable_folder_problem

DATASET_NAME = "ACDC"
SPLITS_FILE = "splits_final.json"
MANIFEST_FILE = "conversion_manifest.json"
# Bump when the output for a given source changes, so older conversions count as a different dataset.
MANIFEST_FORMAT = "nnunet-rdvit convert-acdc 1"
JSON_INDENT = 4  # indented like nnU-Net's own JSON files
CITATION = ("O. Bernard, A. Lalande, C. Zotti, F. Cervenansky et al., Deep Learning Techniques for Automatic MRI "
            "Cardiac Multi-structures Segmentation and Diagnosis: Is the Problem Solved?, IEEE TMI 37(11):2514-2525, "
            "2018, doi:10.1109/TMI.2018.2837502")


@dataclass(frozen=True)
class ConversionResult:
    dataset_dir: Path
    n_training_cases: int
    n_test_cases: int
    n_patients: int  # training patients, the ones the 5-fold split is made of
    n_test_patients: int
    seconds: float
    unchanged: bool  # the raw dataset folder already held this exact conversion; it was not rewritten
    preprocessed_dir: Path | None  # where splits and case metadata were also written ($nnUNet_preprocessed)


def convert_acdc(raw_dir: str | Path, nnunet_raw_dir: str | Path | None = None, dataset_id: int = 27, *,
                 overwrite: bool = False, progress: bool = True,
                 environment: Mapping[str, str] | None = None) -> ConversionResult:
    """Convert ``raw_dir`` (the ACDC folder containing ``training/`` and optionally ``testing/``) into
    ``<nnunet_raw_dir>/Dataset{id:03d}_ACDC``.

    ``nnunet_raw_dir`` defaults to ``$nnUNet_raw``; nnU-Net's folder variables are read from ``environment``
    (default: ``os.environ``; the demo passes its own folders). Problems the user can fix (bad data, missing variable,
    a different dataset in the way) raise :class:`UserError` before anything is written.
    """
    start = time.perf_counter()
    raw_dir = Path(raw_dir).expanduser().resolve()
    environment = os.environ if environment is None else environment
    raw_root = _nnunet_raw_root(nnunet_raw_dir, environment)
    dataset_id = int(dataset_id)
    if not 1 <= dataset_id <= 999:
        raise UserError(f"dataset id must be between 1 and 999, got {dataset_id}")
    name = f"Dataset{dataset_id:03d}_{DATASET_NAME}"
    target = raw_root / name
    if target.is_relative_to(raw_dir) or raw_dir.is_relative_to(target):
        raise UserError(f"the output {target} and the ACDC source {raw_dir} overlap; the source is never "
                        f"modified, so choose an nnUNet_raw folder outside it")
    preprocessed = folder_variable("nnUNet_preprocessed", environment)
    if preprocessed is not None and (problem := creatable_folder_problem(preprocessed)):
        raise UserError(f"nnUNet_preprocessed ({problem}) is where the splits and case metadata also go; point "
                        f"it to a folder you can write to, or unset it")
    preprocessed_dir = preprocessed / name if preprocessed else None
    _check_id_unused(dataset_id, name, raw_root, environment)

    patients = read_acdc_source(raw_dir, progress=progress)
    copies, metadata = _plan_outputs(patients)
    training_cases = sorted(case for case, meta in metadata.items() if meta["subset"] == "training")
    splits = patient_grouped_splits(training_cases, patient_of={c: metadata[c]["patient"] for c in training_cases})
    identity = {
        "format": MANIFEST_FORMAT,
        "sources": dict(sorted({source.relpath: source.sha256 for source in _all_sources(patients)}.items())),
    }

    state, difference = _existing_state(target, identity)
    if state == "different" and not overwrite:
        raise UserError(f"{target} already exists and holds a different dataset: {difference}. Pass --overwrite "
                        f"(overwrite=True) to replace it, or choose another --dataset-id")
    side_files = {SPLITS_FILE: splits, CASE_METADATA_FILE: metadata}
    if preprocessed_dir is not None and not overwrite:
        _check_preprocessed_agrees(preprocessed_dir, side_files)

    if state != "same":
        raw_root.mkdir(parents=True, exist_ok=True)
        _build(target, copies, side_files, identity, len(training_cases), progress)
    if preprocessed_dir is not None:
        preprocessed_dir.mkdir(parents=True, exist_ok=True)
        for file_name, content in side_files.items():
            if _read_json(preprocessed_dir / file_name) != content:
                write_json_atomic(preprocessed_dir / file_name, content, indent=JSON_INDENT)

    return ConversionResult(
        dataset_dir=target,
        n_training_cases=len(training_cases),
        n_test_cases=len(metadata) - len(training_cases),
        n_patients=sum(1 for p in patients if p.subset == "training"),
        n_test_patients=sum(1 for p in patients if p.subset == "testing"),
        seconds=time.perf_counter() - start,
        unchanged=state == "same",
        preprocessed_dir=preprocessed_dir,
    )


def _nnunet_raw_root(nnunet_raw_dir: str | Path | None, environment: Mapping[str, str]) -> Path:
    # nnunetv2 2.8's nnUNet_raw is an _EnvPath (falsy when unset, os.fspath when set); strings and Paths work too.
    if nnunet_raw_dir is None:
        root = folder_variable("nnUNet_raw", environment)
    else:
        given = os.fspath(nnunet_raw_dir) if nnunet_raw_dir else ""
        root = Path(given).expanduser().resolve() if given.strip() else None
    if root is None:
        raise UserError("no nnU-Net raw folder: set the nnUNet_raw environment variable "
                        "(export nnUNet_raw=/path/to/nnUNet_raw) or pass --nnunet-raw /path/to/nnUNet_raw")
    problem = creatable_folder_problem(root)
    if problem is not None:
        where = "set nnUNet_raw to" if nnunet_raw_dir is None else "pass --nnunet-raw"
        raise UserError(f"nnU-Net raw folder: {problem}; {where} a folder you can write to")
    return root


def _check_id_unused(dataset_id: int, name: str, raw_root: Path, environment: Mapping[str, str]) -> None:
    """nnU-Net refuses to run when two dataset names share an id across raw, preprocessed and results."""
    roots = {"nnUNet_raw": raw_root, "nnUNet_preprocessed": folder_variable("nnUNet_preprocessed", environment),
             "nnUNet_results": folder_variable("nnUNet_results", environment)}
    for variable, root in roots.items():
        if root is None or not root.is_dir():
            continue
        clashes = sorted(entry.name for entry in root.iterdir()
                         if entry.is_dir() and entry.name.startswith(f"Dataset{dataset_id:03d}") and entry.name != name)
        if clashes:
            raise UserError(f"dataset id {dataset_id} is already used by {', '.join(clashes)} in {variable} ({root}); "
                            f"nnU-Net needs unique ids: choose another --dataset-id")


def _check_preprocessed_agrees(preprocessed_dir: Path, side_files: dict[str, object]) -> None:
    """nnU-Net's planner asserts that the raw and preprocessed splits agree; a stale one must not linger."""
    for file_name, content in side_files.items():
        path = preprocessed_dir / file_name
        if path.exists() and _read_json(path) != content:
            raise UserError(f"{path} differs from this conversion (left over from another dataset with this id?). "
                            f"Pass --overwrite to replace it and re-run nnU-Net preprocessing, or choose another "
                            f"--dataset-id")


def _plan_outputs(patients: list[AcdcPatient]) -> tuple[dict[str, SourceFile], dict[str, dict]]:
    """Output path (relative to the dataset folder) -> source file, and the per-case metadata."""
    copies: dict[str, SourceFile] = {}
    metadata: dict[str, dict] = {}
    for patient in patients:
        images, labels = ("imagesTr", "labelsTr") if patient.subset == "training" else ("imagesTs", "labelsTs")
        for case in patient.cases:
            copies[f"{images}/{case.case_id}_0000.nii.gz"] = case.image
            if case.label is not None:
                copies[f"{labels}/{case.case_id}.nii.gz"] = case.label
            metadata[case.case_id] = {
                "patient": patient.name, "phase": case.phase, "frame": case.frame,
                "group": patient.info["group"], "height": patient.info["height"],
                "weight": patient.info["weight"], "nb_frames": patient.info["nb_frames"],
                "subset": patient.subset,
            }
    return dict(sorted(copies.items())), dict(sorted(metadata.items()))


def _all_sources(patients: list[AcdcPatient]) -> list[SourceFile]:
    sources = []
    for patient in patients:
        sources.append(patient.info_file)
        for case in patient.cases:
            sources += [case.image] + ([case.label] if case.label is not None else [])
    return sources


def _existing_state(target: Path, identity: dict) -> tuple[str, str]:
    """("absent" | "same" | "different", why it is different).

    "same" means this exact conversion, untouched. A folder converted from the same source whose files were
    edited, added or removed since counts as different too: replacing it could destroy someone's work.
    """
    if not target.exists() and not target.is_symlink():
        return "absent", ""
    manifest = _read_json(target / MANIFEST_FILE) if target.is_dir() else None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("outputs"), dict):
        return "different", f"it has no readable {MANIFEST_FILE}, so it was not written by this converter"
    if {key: manifest.get(key) for key in identity} != identity:
        return "different", "it was converted from other source files or by another converter version"
    outputs = manifest["outputs"]
    present = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} - {MANIFEST_FILE}
    changed = sorted(present.symmetric_difference(outputs))
    changed += sorted(relpath for relpath in present & outputs.keys()
                      if hashlib.sha256((target / relpath).read_bytes()).hexdigest() != outputs[relpath])
    if changed:
        return "different", (f"it was converted from this source, but {len(changed)} file(s) were added, removed "
                             f"or edited since (e.g. {changed[0]})")
    return "same", ""


def _build(target: Path, copies: dict[str, SourceFile], side_files: dict[str, object], identity: dict,
           n_training_cases: int, progress: bool) -> None:
    """Write the whole dataset into a hidden sibling folder, then swap it into place."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
    from tqdm import tqdm

    # A hidden name: nnU-Net looks datasets up by the prefix "DatasetNNN", which this must not match.
    staging = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    staging.mkdir(mode=0o777)  # honours the umask, unlike tempfile.mkdtemp's private 0700
    try:
        outputs: dict[str, str] = {}
        for relpath, source in tqdm(copies.items(), desc=f"Writing {target.name}", unit="file", disable=not progress):
            data = source.path.read_bytes()
            if hashlib.sha256(data).hexdigest() != source.sha256:
                raise UserError(f"{source.path} changed while it was being converted; run the conversion again")
            (staging / relpath).parent.mkdir(exist_ok=True)
            (staging / relpath).write_bytes(data)
            outputs[relpath] = source.sha256
        generate_dataset_json(
            str(staging),
            channel_names={0: "cineMRI"},
            labels=dict(LABELS),
            num_training_cases=n_training_cases,
            file_ending=".nii.gz",
            dataset_name=target.name,
            reference=CITATION,  # not citation=: generate_dataset_json 2.8 stores `release` under that key
            description="ACDC cine-MRI short-axis stacks, ED and ES frames (Bernard et al., IEEE TMI 2018)",
            license="ACDC terms: research use, cite Bernard et al., IEEE TMI 2018",
            converted_by="nnunet-rdvit convert-acdc",
        )
        for file_name, content in side_files.items():
            write_json_atomic(staging / file_name, content, indent=JSON_INDENT)
        for file_name in ("dataset.json", *side_files):
            outputs[file_name] = hashlib.sha256((staging / file_name).read_bytes()).hexdigest()
        manifest = {**identity, "outputs": dict(sorted(outputs.items()))}
        write_json_atomic(staging / MANIFEST_FILE, manifest, indent=JSON_INDENT)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_into_place(staging: Path, target: Path) -> None:
    if not target.exists() and not target.is_symlink():
        os.replace(staging, target)
        return
    backup = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.replace(target, backup)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(backup, target)
        raise
    if backup.is_dir() and not backup.is_symlink():
        shutil.rmtree(backup)
    else:
        backup.unlink()


def _read_json(path: Path) -> object:
    """The parsed file, or None when it is missing or not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

"""``predict`` as a whole: inputs → model → one volume after another → per-patient indices → batch files.

Problems with the run itself (inputs that do not exist or are of the wrong kind, the model folder, an output
folder that cannot be written or lies inside an input, another run holding it) stop it before anything is
written. A bad case (an unreadable volume, a broken ``Info.cfg``) is reported and the others
still run; :attr:`PredictResult.failures` lists them and the command then exits with status 2. Every file is
written atomically, and only once everything it holds has been computed; an output folder this run created
and left empty is removed again. One run at a time writes into a folder (:mod:`nnunet_rdvit.output_lock`), and
the folder-level files merge with earlier runs' (:mod:`nnunet_rdvit.inference.batch_files`).
"""

from __future__ import annotations

import hashlib
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from nnunet_rdvit import __version__
from nnunet_rdvit.acdc_labels import DESCRIPTION, LABEL_NAMES
from nnunet_rdvit.atomic import write_json_atomic
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.inference.batch_files import INDICES_FILE, earlier_summary, index_row, write_batch_files
from nnunet_rdvit.inference.cardiac_indices import (MYOCARDIAL_DENSITY_G_PER_ML, cardiac_indices,
                                                    structure_volumes_ml)
from nnunet_rdvit.inference.discovery import Inputs, PatientJob, VolumeJob, discover_inputs
from nnunet_rdvit.inference.introspection import TokenMaps, check_introspectable, token_maps
from nnunet_rdvit.inference.introspection_figure import write_introspection_figure
from nnunet_rdvit.inference.model import LoadedModel, load_model
from nnunet_rdvit.inference.nifti_io import Volume3D, read_image, write_like
from nnunet_rdvit.inference.report_figure import write_report
from nnunet_rdvit.inference.segmentation import segment
from nnunet_rdvit.inference.slices import slice_axis
from nnunet_rdvit.inference.structure_stats import introspection_summary, summary_rows
from nnunet_rdvit.inference.tables import write_csv
from nnunet_rdvit.number_format import MISSING
from nnunet_rdvit.output_lock import output_lock
from nnunet_rdvit.paths import check_output_outside, prepare_output_folder, remove_if_empty

@dataclass
class PredictSettings:
    inputs: Sequence[Path]
    output: Path
    model: Path
    folds: Sequence[int | str] | None = None  # None: every fold with a checkpoint, ensembled
    checkpoint: str = "checkpoint_final.pth"
    device: str = "auto"  # "auto" picks CUDA when present
    mirroring: bool = True
    step_size: float = 0.5
    ed: int | None = None
    es: int | None = None
    introspect: bool = False
    progress: bool = True


@dataclass
class CaseResult:
    name: str  # case id of a volume, or patient name for a patient-level failure
    source: str
    ok: bool
    message: str = ""
    seconds_prediction: float = 0.0
    seconds_total: float = 0.0
    volumes_ml: dict[str, float] = field(default_factory=dict)


@dataclass
class PredictResult:
    output: Path
    model: dict
    cases: list[CaseResult]
    patients: list[dict]  # the cardiac_indices.json records
    seconds: float

    @property
    def failures(self) -> list[CaseResult]:
        return [case for case in self.cases if not case.ok]


def predict(settings: PredictSettings) -> PredictResult:
    """Segment every input; see the module docstring for what stops the run and what only fails a case."""
    start = time.perf_counter()
    inputs = discover_inputs([Path(p) for p in settings.inputs], settings.ed, settings.es)
    output = Path(settings.output)
    _check_output_apart_from_inputs(output, inputs, [Path(p) for p in settings.inputs], Path(settings.model))
    created = prepare_output_folder(output)
    try:
        with output_lock(output, "predict", clean_depth=1):  # outputs lie in OUTDIR and OUTDIR/<patient>
            return _predict_locked(settings, inputs, output, start)
    finally:
        remove_if_empty(output, created)


def _predict_locked(settings: PredictSettings, inputs: Inputs, output: Path, start: float) -> PredictResult:
    model = load_model(Path(settings.model), settings.folds, settings.checkpoint, settings.device,
                       settings.mirroring, settings.step_size)
    if settings.introspect:
        check_introspectable(model)
    earlier = earlier_summary(output, model.describe())
    run = _Run(model, output, settings.introspect, settings.progress, len(inputs.volumes))
    run.cases += [CaseResult(name, name, False, message) for name, message in inputs.failures]
    for name, message in inputs.failures:
        run.say(f"FAILED {name}: {message}")
    for patient in inputs.patients:
        run.patient(patient)
    for volume in inputs.singles:
        run.volume(volume)
    run.close()
    result = PredictResult(output, model.describe(), run.cases, run.patients, time.perf_counter() - start)
    if run.wrote_anything:
        write_batch_files(output, result.model, [vars(case) for case in result.cases], result.patients,
                          run.introspection_rows, result.seconds, earlier)
    return result


def _check_output_apart_from_inputs(output: Path, inputs: Inputs, paths: list[Path], model: Path) -> None:
    """Nothing is ever written into an input folder, the model folder, or beside an input file."""
    check_output_outside(output, [p for p in paths if p.is_dir()] + ([model] if model.is_dir() else []))
    for volume in inputs.volumes:
        folder = output / volume.patient if volume.patient else output
        if folder.resolve() == volume.source.parent.resolve():
            raise UserError(f"the output folder {folder} holds the input {volume.source.name}; choose an output "
                            f"folder without inputs (outputs would sit beside, or replace, the originals)")


class _Run:
    """State of one batch: the model, the progress bar and everything produced so far."""

    def __init__(self, model: LoadedModel, output: Path, introspect: bool, progress: bool, n_volumes: int):
        from tqdm import tqdm

        self.model, self.output, self.introspect = model, output, introspect
        self.bar = tqdm(total=n_volumes, desc="Segmenting", unit="volume", disable=not progress)
        self.cases: list[CaseResult] = []
        self.patients: list[dict] = []
        self.introspection_rows: list[dict] = []
        self.wrote_anything = False

    def say(self, line: str) -> None:
        self.bar.write(line)

    def close(self) -> None:
        self.bar.close()

    def patient(self, patient: PatientJob) -> None:
        done = {phase: self.volume(job) for phase, job in patient.volumes.items()}
        missing = [phase for phase, outcome in done.items() if outcome is None]
        if missing:
            self.say(f"  {patient.name}: no cardiac indices ({' and '.join(missing)} frame failed)")
            return
        volumes = {phase: structure_volumes_ml(labels, image.voxel_volume_ml)
                   for phase, (image, labels) in done.items()}
        record = {
            "patient": patient.name,
            "frames": patient.frames,
            "frames_from": patient.frames_from,
            "segmentations": {phase: f"{job.case_id}.nii.gz" for phase, job in patient.volumes.items()},
            "volumes_ml": volumes,
            "indices": cardiac_indices(volumes["ED"], volumes["ES"]),
            "myocardial_density_g_per_ml": MYOCARDIAL_DENSITY_G_PER_ML,
            "model": self.model.describe(),
        }
        folder = self.output / patient.name
        write_report(folder / "report.png", patient.name, patient.frames,
                     {phase: image for phase, (image, _) in done.items()},
                     {phase: labels for phase, (_, labels) in done.items()}, volumes, record["indices"],
                     _model_note(self.model))
        write_csv(folder / f"{INDICES_FILE}.csv", [index_row(record)])
        write_json_atomic(folder / f"{INDICES_FILE}.json", record)
        self.patients.append(record)
        ef = record["indices"]["LV_EF_percent"]
        self.say(f"  {patient.name}: LV EDV {volumes['ED']['LV']:.1f} mL, ESV {volumes['ES']['LV']:.1f} mL, "
                 f"EF {MISSING if ef is None else f'{ef:.1f} %'}")

    def volume(self, job: VolumeJob) -> tuple[Volume3D, np.ndarray] | None:
        """Segment and write one volume; None (and a recorded failure) if it cannot be done."""
        name = f"{job.patient}/{job.case_id}" if job.patient else job.case_id
        source = f"{job.source}" + (f" (frame {job.frame})" if job.frame else "")
        start = time.perf_counter()
        try:
            image = read_image(job.source, job.frame)
            segmentation = segment(self.model, image)
            seconds_prediction = time.perf_counter() - start
            maps = token_maps(self.model, segmentation) if self.introspect else None
            volumes = structure_volumes_ml(segmentation.labels, image.voxel_volume_ml)
            self._write_volume(job, image, segmentation.labels, maps, volumes, seconds_prediction, start)
        except UserError as error:
            self._fail(name, source, str(error))
            return None
        except Exception as error:  # a bug or an environment failure: report it, keep the batch going
            self.say(traceback.format_exc())
            self._fail(name, source, f"unexpected {type(error).__name__}: {error}")
            return None
        finally:
            self.bar.update()
        self.cases.append(CaseResult(name, source, True, "", seconds_prediction, time.perf_counter() - start,
                                     volumes))
        return image, segmentation.labels

    def _fail(self, name: str, source: str, message: str) -> None:
        self.cases.append(CaseResult(name, source, False, message))
        self.say(f"FAILED {name}: {message}")

    def _write_volume(self, job: VolumeJob, image: Volume3D, labels: np.ndarray, maps: TokenMaps | None,
                      volumes: dict[str, float], seconds_prediction: float, start: float) -> None:
        folder = self.output / job.patient if job.patient else self.output
        stem = folder / job.case_id
        sidecar = {
            "segmentation": f"{job.case_id}.nii.gz",
            "labels": LABEL_NAMES,
            "model_labels": self.model.model_labels,
            "source": str(job.source),
            "source_sha256": hashlib.sha256(job.source.read_bytes()).hexdigest(),
            "frame": job.frame,
            "patient": job.patient,
            "phase": job.phase,
            "shape": list(labels.shape),
            "spacing_mm": list(image.spacing),
            "affine": image.reference.affine.tolist(),
            "volumes_ml": volumes,
            "model": self.model.describe(),
            "seconds_prediction": seconds_prediction,
        }
        if maps is not None:
            summary = introspection_summary(labels, maps, slice_axis(image.spacing))
            self.introspection_rows += summary_rows(job.case_id, summary)
            if maps.halting is not None:
                write_like(image, maps.halting, stem.with_name(f"{job.case_id}_halting.nii.gz"),
                           "nnunet-rdvit ACT loops per voxel")
            if maps.expert_share is not None:
                write_like(image, maps.dominant_expert, stem.with_name(f"{job.case_id}_experts.nii.gz"),
                           "nnunet-rdvit dominant MoE expert (1-based; 0 none)")
            write_introspection_figure(stem.with_name(f"{job.case_id}_introspection.png"), f"{job.case_id}: "
                                       f"{self.model.trainer}", image, labels, maps)
            write_json_atomic(stem.with_name(f"{job.case_id}_introspection.json"), summary)
        write_like(image, labels, stem.with_name(f"{job.case_id}.nii.gz"),
                   f"nnunet-rdvit: {DESCRIPTION}")
        sidecar["seconds_total"] = time.perf_counter() - start
        write_json_atomic(stem.with_name(f"{job.case_id}.json"), sidecar)
        self.wrote_anything = True


def _model_note(model: LoadedModel) -> str:
    return (f"Model {model.trainer} ({model.configuration}), folds {', '.join(map(str, model.folds))}, "
            f"{model.device}; nnunet-rdvit {__version__}. Research software, not for clinical decisions.")

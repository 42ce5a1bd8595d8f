"""Learning curves: Dice against training time, from the snapshot checkpoints of time-budgeted runs.

Each trainer of an :class:`~.grid.ExperimentGrid` with a :class:`~nnunet_rdvit.fraction_trainer_names.TimeBudget`
trains through the experiment runner (``nnUNetv2_train``; finished runs skipped, interrupted ones continued with
``--c``) with ``NNUNET_RDVIT_SNAPSHOT_MINUTES`` set, so it leaves ``checkpoint_at_<seconds>s.pth`` snapshots
(:mod:`nnunet_rdvit.training.time_budget`). Every snapshot, and ``checkpoint_final.pth``, is then one point:

* **Dice** on the whole validation fold of ``splits_final.json``: the stock ``nnUNetv2_predict -chk <snapshot>``
  on the fold's raw images (a folder of links to ``imagesTr``), scored by nnU-Net's ``compute_metrics_on_folder``
  against ``gt_segmentations``, as nnU-Net's own validation does. For ``checkpoint_final.pth`` that validation
  already exists (``validation/summary.json``, the same predictor and metric on the same weights) and is read.
  Structures are nnU-Net's per-label means over cases; the overall value is its ``foreground_mean``.
  Optionally also on a labelled test folder.
* **Training seconds**, **epochs** and the **ponder time** (mean ACT loops per token over the last epoch's
  training steps; models without ACT have none) come from the checkpoint's log; **steps** are epochs × the
  iterations per epoch the run recorded in ``training_subset.json``, beside its batch size.

Each point is saved as it is evaluated (``points/<model>/<checkpoint>__<split>.json``, with the checkpoint's
size and modification time), so a re-run evaluates only what is new; a checkpoint rewritten since (a run
started over) is evaluated again. A snapshot from the same epoch as ``checkpoint_final.pth`` (the epoch that
crossed the budget) is the same weights and is left out.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TextIO

from nnunet_rdvit.atomic import write_json_atomic, write_text_atomic
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.experiments.aggregate import OVERALL, structure_names
from nnunet_rdvit.experiments.grid import ExperimentGrid, Job
from nnunet_rdvit.experiments.plot import plot_learning_curves
from nnunet_rdvit.experiments.report import write_csv
from nnunet_rdvit.experiments.runner import CPU_ENV, State, job_state
from nnunet_rdvit.experiments.test_set import model_dataset_json, score_predictions
from nnunet_rdvit.fraction_trainer_names import TimeBudget
from nnunet_rdvit.number_format import format_number
from nnunet_rdvit.stock_commands import run_stock_command

FINAL = "checkpoint_final.pth"
VALIDATION, TEST = "validation", "test"
PONDER_KEY = "ponder_time"  # logged per epoch by the transformer trainers (training.trainers.AUX_LOG_KEYS)
TABLE = "learning_curves"  # .md, .csv, .json
FIGURE = "learning_curves.png"
_SNAPSHOT = re.compile(r"^checkpoint_at_(\d+)s\.pth$")


@dataclass(frozen=True)
class LabelledFolder:
    """A labelled test folder to score every checkpoint on besides the validation fold."""

    images: Path  # nnU-Net's layout: <case>_<channel>.<ending>
    labels: Path  # <case>.<ending>


@dataclass(frozen=True)
class CurvePoint:
    """One checkpoint of one trainer, scored on one split."""

    trainer: str  # base trainer, e.g. RDViTTrainer
    model: str  # the full trainer name (results folder)
    configuration: str
    fold: int
    split: str  # VALIDATION or TEST
    checkpoint: str
    training_seconds: float
    epochs: int
    iterations_per_epoch: int
    batch_size: int
    steps: int  # epochs × iterations_per_epoch
    ponder_time: float  # NaN: the model has no ACT
    cases: int
    dice: dict[str, float]  # structure name -> Dice; OVERALL: nnU-Net's foreground mean


@dataclass(frozen=True)
class CurveRow:
    """A point's Dice for one structure: the long CSV format of the other experiment tables."""

    trainer: str
    model: str
    configuration: str
    fold: int
    split: str
    checkpoint: str
    training_seconds: float
    epochs: int
    iterations_per_epoch: int
    batch_size: int
    steps: int
    ponder_time: float
    cases: int
    structure: str
    dice: float


@dataclass(frozen=True)
class CheckpointLog:
    epochs: int
    training_seconds: float
    ponder_time: float


def learning_curve_grid(dataset: str, trainers: Sequence[str], configuration: str, fold: int, percent: int,
                        budget: TimeBudget, plans: str = "nnUNetPlans", test_time_mirroring: bool = True
                        ) -> ExperimentGrid:
    """One job per trainer; the runner's grid, so its checks, folders and resume logic apply unchanged."""
    return ExperimentGrid(dataset, tuple(trainers), (percent,), (fold,), (configuration,), budget, plans,
                          test_time_mirroring)


def snapshot_environment(snapshot_minutes: float) -> dict[str, str]:
    """What each training job needs in its environment to write snapshots every ``snapshot_minutes``."""
    from nnunet_rdvit.training.time_budget import SNAPSHOT_ENV

    return {SNAPSHOT_ENV: f"{snapshot_minutes:g}"}


def curve_checkpoints(fold_dir: Path) -> list[str]:
    """The fold's snapshots in training order, then ``checkpoint_final.pth`` once the run has finished."""
    snapshots = sorted((int(match[1]), path.name) for path in fold_dir.glob("checkpoint_at_*s.pth")
                       if (match := _SNAPSHOT.match(path.name)))
    names = [name for _, name in snapshots]
    return names + ([FINAL] if job_state(fold_dir) is State.DONE else [])


def read_checkpoint_log(path: Path) -> CheckpointLog:
    """Epochs, training seconds and last ponder time of a checkpoint, read on the CPU."""
    import torch

    from nnunet_rdvit.training.time_budget import TRAINING_SECONDS_KEY

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        logging = checkpoint["logging"]
        epochs = int(checkpoint["current_epoch"])
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint gets the same message
        raise UserError(f"cannot read checkpoint {path} ({type(error).__name__}: {error}); delete it to leave it "
                        f"out of the curve, or re-run the training") from None
    seconds = logging.get(TRAINING_SECONDS_KEY) or []
    if not seconds:
        raise UserError(f"{path} has no logged training time ({TRAINING_SECONDS_KEY}); learning curves need a "
                        f"checkpoint of a time-budgeted nnunet-rdvit trainer (<Base>_frac<P>_min<M>)")
    ponder = logging.get(PONDER_KEY) or []
    return CheckpointLog(epochs, float(seconds[-1]), float(ponder[-1]) if ponder else math.nan)


def validation_cases(preprocessed_dataset: Path, fold: int) -> list[str]:
    """The validation cases of ``fold`` in nnU-Net's ``splits_final.json`` (written by the first training)."""
    splits_file = preprocessed_dataset / "splits_final.json"
    if not splits_file.is_file():
        raise UserError(f"{splits_file} is missing; nnUNetv2_train writes it when it first trains the dataset")
    splits = json.loads(splits_file.read_text())
    if fold >= len(splits):
        raise UserError(f"fold {fold} is not in {splits_file} ({len(splits)} folds: 0..{len(splits) - 1})")
    return sorted(splits[fold]["val"])


def link_images(cases: Sequence[str], images_tr: Path, dataset_json: dict, target: Path) -> Path:
    """A folder at ``target`` of links to the cases' raw images (every channel), for ``nnUNetv2_predict -i``.

    Rebuilt each time in a temporary folder and moved into place, so it always holds exactly ``cases``.
    """
    ending = dataset_json["file_ending"]
    channels = len(dataset_json.get("channel_names") or dataset_json.get("modality") or {"0": None})
    sources = [images_tr / f"{case}_{channel:04d}{ending}" for case in cases for channel in range(channels)]
    missing = [path.name for path in sources if not path.is_file()]
    if missing:
        raise UserError(f"{len(missing)} validation image(s) missing from {images_tr} (e.g. {missing[0]}); the "
                        f"learning curve predicts the fold's raw images, so nnUNet_raw must hold the dataset "
                        f"that was preprocessed")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*"):  # link folders of a run killed while linking
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    for source in sources:
        (building / source.name).symlink_to(source.resolve())
    if target.exists():
        shutil.rmtree(target)
    building.rename(target)
    return target


def labelled_test_cases(test: LabelledFolder, file_ending: str) -> list[str]:
    """Cases of a test folder (from the first channel's images); each must have a label."""
    suffix = f"_0000{file_ending}"
    cases = sorted(path.name[:-len(suffix)] for path in test.images.iterdir() if path.name.endswith(suffix))
    if not cases:
        raise UserError(f"no test images named <case>{suffix} in {test.images} (nnU-Net's imagesTs layout)")
    unlabelled = [case for case in cases if not (test.labels / f"{case}{file_ending}").is_file()]
    if unlabelled:
        raise UserError(f"{len(unlabelled)} test case(s) have no label in {test.labels} (e.g. "
                        f"{unlabelled[0]}{file_ending}); give a label for every image in {test.images}")
    return cases


def summary_dice(summary_file: Path, names: dict[str, str]) -> tuple[dict[str, float], int]:
    """nnU-Net's per-structure means and foreground mean of Dice in a summary.json, and its number of cases."""
    summary = json.loads(summary_file.read_text())
    dice = {names.get(key, key): float(metrics["Dice"]) for key, metrics in summary["mean"].items()}
    dice[OVERALL] = float(summary["foreground_mean"]["Dice"])
    return dice, len(summary["metric_per_case"])


class LearningCurve:
    """Evaluates the checkpoints of a learning-curve grid and writes its table and figure into ``out_dir``."""

    def __init__(self, grid: ExperimentGrid, results: Path, raw: Path, preprocessed: Path, out_dir: Path,
                 device: str, test: LabelledFolder | None = None, echo: TextIO | None = None):
        (self.configuration,), (self.fold,) = grid.configurations, grid.folds
        self.grid, self.results, self.raw, self.preprocessed = grid, results, raw, preprocessed
        self.out_dir, self.device, self.test = out_dir, device, test
        self.echo = sys.stdout if echo is None else echo
        self._validation_images: tuple[list[str], Path] | None = None

    def evaluate(self) -> list[CurvePoint]:
        """Every point of every trainer (evaluating the new ones), in trainer then training order."""
        points: list[CurvePoint] = []
        for job in self.grid.jobs():
            fold_dir = self.grid.fold_dir(self.results, job)
            names = curve_checkpoints(fold_dir) if fold_dir.is_dir() else []
            if not names:
                self._say(f"{job.trainer}: no snapshot or final checkpoint in {fold_dir} yet")
                continue
            points += self._evaluate_job(job, fold_dir, names)
        return points

    def _evaluate_job(self, job: Job, fold_dir: Path, checkpoints: list[str]) -> list[CurvePoint]:
        final_epochs = None
        if FINAL in checkpoints:
            final = self._stored_point(job, fold_dir / FINAL, VALIDATION)
            final_epochs = final.epochs if final else read_checkpoint_log(fold_dir / FINAL).epochs
        splits = [VALIDATION] + ([TEST] if self.test else [])
        points = []
        for index, name in enumerate(checkpoints, start=1):
            tag = f"{job.trainer} [{index}/{len(checkpoints)}] {name}"
            stored = {split: self._stored_point(job, fold_dir / name, split) for split in splits}
            done = all(point is not None for point in stored.values())
            log = None if done else read_checkpoint_log(fold_dir / name)
            epochs = stored[VALIDATION].epochs if done else log.epochs
            if name != FINAL and epochs == final_epochs:
                self._say(f"{tag}: the same epoch as {FINAL}, left out")
            elif done:
                self._say(f"{tag}: already evaluated, skipped")
                points += stored.values()
            else:
                points += [stored[split] or self._evaluate_point(job, fold_dir, name, log, split, tag)
                           for split in splits]
        return points

    def _evaluate_point(self, job: Job, fold_dir: Path, name: str, log: CheckpointLog, split: str,
                        tag: str) -> CurvePoint:
        model_dir = fold_dir.parent
        dataset_json = model_dataset_json(model_dir)
        if split == VALIDATION and name == FINAL:
            summary = fold_dir / "validation" / "summary.json"
            self._say(f"{tag}: validation Dice from nnU-Net's final validation ({summary})")
        else:
            self._say(f"{tag}: {split} at {log.training_seconds:.0f} s of training, {log.epochs} epochs")
            predictions = self._predict(job, fold_dir / name, split, dataset_json)
            labels = (self.preprocessed / self.grid.dataset / "gt_segmentations" if split == VALIDATION
                      else self.test.labels)
            summary = score_predictions(model_dir, labels, predictions)
        dice, cases = summary_dice(summary, structure_names(dataset_json))
        iterations, batch_size = _recorded_budget(fold_dir)
        point = CurvePoint(job.spec.base, job.trainer, self.configuration, self.fold, split, name,
                           log.training_seconds, log.epochs, iterations, batch_size, log.epochs * iterations,
                           log.ponder_time, cases, dice)
        self._say(f"  Dice {', '.join(f'{k} {v:.4f}' for k, v in dice.items())}")
        write_json_atomic(self._point_file(job, name, split),
                          {"checkpoint_fingerprint": _fingerprint(fold_dir / name), "point": _jsonable(point)})
        return point

    def _predict(self, job: Job, checkpoint: Path, split: str, dataset_json: dict) -> Path:
        """The checkpoint's predictions of every case of ``split`` (resumed if interrupted) with nnUNetv2_predict."""
        if split == VALIDATION:
            cases, images = self._validation_inputs(dataset_json)
        else:
            cases, images = labelled_test_cases(self.test, dataset_json["file_ending"]), self.test.images
        predictions = self.out_dir / "predictions" / job.trainer / checkpoint.stem / split
        marker = predictions / "checkpoint.json"
        fingerprint = {"checkpoint": str(checkpoint), "fingerprint": _fingerprint(checkpoint)}
        if predictions.exists() and (not marker.is_file() or json.loads(marker.read_text()) != fingerprint):
            shutil.rmtree(predictions)  # predictions of an older file of that name: never mixed in
        write_json_atomic(marker, fingerprint)
        args = ["-i", images, "-o", predictions, "-d", self.grid.dataset, "-c", self.configuration,
                "-tr", job.trainer, "-p", self.grid.plans, "-f", str(self.fold), "-chk", checkpoint.name,
                "-device", self.device, "--continue_prediction"]
        if self.device == "cpu":
            args += ["-npp", "1", "-nps", "1"]
        env = {**CPU_ENV, **os.environ} if self.device == "cpu" else dict(os.environ)
        log = self.out_dir / "logs" / f"predict_{job.trainer}_{checkpoint.stem}_{split}.log"
        run_stock_command("nnUNetv2_predict", args, env, log, echo=True, prefix="    | ")
        ending = dataset_json["file_ending"]
        missing = [case for case in cases if not (predictions / f"{case}{ending}").is_file()]
        if missing:
            raise UserError(f"nnUNetv2_predict left {len(missing)} of {len(cases)} {split} case(s) unpredicted "
                            f"(e.g. {missing[0]}); see {log}")
        return predictions

    def _validation_inputs(self, dataset_json: dict) -> tuple[list[str], Path]:
        """The fold's validation cases and a folder of links to their raw images (made once per run)."""
        if self._validation_images is None:
            cases = validation_cases(self.preprocessed / self.grid.dataset, self.fold)
            folder = link_images(cases, self.raw / self.grid.dataset / "imagesTr", dataset_json,
                                 self.out_dir / "inputs" / f"{self.grid.dataset}_fold{self.fold}_validation")
            self._validation_images = cases, folder
        return self._validation_images

    def _stored_point(self, job: Job, checkpoint: Path, split: str) -> CurvePoint | None:
        """The point saved by an earlier run, if it was computed from this very checkpoint file (else None:
        evaluate it again)."""
        path = self._point_file(job, checkpoint.name, split)
        try:
            stored = json.loads(path.read_text())
            if stored["checkpoint_fingerprint"] != _fingerprint(checkpoint):
                return None
            fields = stored["point"]
            fields["ponder_time"] = math.nan if fields["ponder_time"] is None else fields["ponder_time"]
            fields["dice"] = {k: math.nan if v is None else v for k, v in fields["dice"].items()}
            return CurvePoint(**fields)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # absent, or from another version
            return None

    def _point_file(self, job: Job, checkpoint: str, split: str) -> Path:
        return self.out_dir / "points" / job.trainer / f"{Path(checkpoint).stem}__{split}.json"

    def _say(self, text: str) -> None:
        print(text, file=self.echo, flush=True)


@dataclass(frozen=True)
class CurveSetting:
    """What every point of one table shares; it heads the table and titles the figure."""

    dataset: str
    configuration: str
    fold: int
    percent: int
    plans: str
    budget: str  # e.g. "30 minutes of training (epochs of 50 iterations), batch 8, no test-time mirroring"

    @classmethod
    def of(cls, grid: ExperimentGrid) -> "CurveSetting":
        return cls(grid.dataset, grid.configurations[0], grid.folds[0], grid.percents[0], grid.plans, _budget(grid))


def write_learning_curves(points: Sequence[CurvePoint], setting: CurveSetting, out_dir: Path) -> dict[str, Path]:
    """The table (Markdown, long CSV, JSON) and the Dice-vs-time figure; returns {description: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"table (Markdown)": out_dir / f"{TABLE}.md", "table (CSV)": out_dir / f"{TABLE}.csv",
             "table (JSON)": out_dir / f"{TABLE}.json"}
    write_text_atomic(paths["table (Markdown)"], markdown_report(points, setting))
    write_csv(paths["table (CSV)"], curve_rows(points), CurveRow)
    write_json_atomic(paths["table (JSON)"], {**dataclasses.asdict(setting),
                                              "points": [_jsonable(point) for point in points]})
    if points:
        series = {}
        for point in points:
            series.setdefault(point.split, {}).setdefault(point.trainer, []).append(
                (point.training_seconds / 60.0, point.dice[OVERALL]))
        plot_learning_curves(series, out_dir / FIGURE, f"{setting.dataset} {setting.configuration} fold "
                                                       f"{setting.fold}: {setting.budget}")
        paths["figure"] = out_dir / FIGURE
    return paths


def read_learning_curves(path: Path) -> tuple[CurveSetting, list[CurvePoint]]:
    """A ``learning_curves.json`` as :func:`write_learning_curves` wrote it."""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        setting = CurveSetting(**{field.name: table[field.name] for field in dataclasses.fields(CurveSetting)})
        points = [CurvePoint(**{**point, "ponder_time": _nan_if_null(point["ponder_time"]),
                                "dice": {key: _nan_if_null(value) for key, value in point["dice"].items()}})
                  for point in table["points"]]
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not a learning-curve table of this version ({type(error).__name__}: {error}); "
                        f"run benchmarks/learning_curves.py again on its folder to rewrite it") from None
    return setting, points


def merge_learning_curves(tables: Sequence[tuple[Path, CurveSetting, Sequence[CurvePoint]]]
                          ) -> tuple[CurveSetting, list[CurvePoint]]:
    """One table from several (e.g. trainers run by separate commands): same setting, no point twice."""
    (first_path, setting, _), points, seen = tables[0], [], {}
    for path, other, table_points in tables:
        for field in dataclasses.fields(CurveSetting):
            if getattr(other, field.name) != getattr(setting, field.name):
                raise UserError(f"{path} and {first_path} differ in {field.name} ({getattr(other, field.name)!r} "
                                f"vs {getattr(setting, field.name)!r}); only curves of one setting share a table")
        for point in table_points:
            key = (point.model, point.checkpoint, point.split)
            if key in seen:
                raise UserError(f"{point.model} {point.checkpoint} ({point.split}) is in both {seen[key]} and {path}")
            seen[key] = path
            points.append(point)
    return setting, points


def curve_rows(points: Sequence[CurvePoint]) -> list[CurveRow]:
    fields = [field.name for field in dataclasses.fields(CurvePoint) if field.name != "dice"]
    return [CurveRow(**{name: getattr(point, name) for name in fields}, structure=structure, dice=dice)
            for point in points for structure, dice in point.dice.items()]


def markdown_report(points: Sequence[CurvePoint], setting: CurveSetting) -> str:
    lines = [f"# Learning curves on {setting.dataset}, {setting.configuration}, fold {setting.fold}", "",
             f"Budget: {setting.budget}; data fraction {setting.percent} %; plans {setting.plans}. Dice: nnU-Net's "
             f"predictor and metric (mean over cases per structure; mean: nnU-Net's foreground mean). Steps: "
             f"epochs × iterations per epoch. Ponder time: mean ACT loops per token over the checkpoint's last "
             f"training epoch.", ""]
    for split in (VALIDATION, TEST):
        chosen = [point for point in points if point.split == split]
        if chosen:
            title = "Validation fold" if split == VALIDATION else "Test set"
            lines += [f"## {title} ({chosen[0].cases} cases)", "", *curve_table(chosen), ""]
    if not points:
        lines += ["No checkpoint evaluated yet.", ""]
    return "\n".join(lines)


def curve_table(points: Sequence[CurvePoint]) -> list[str]:
    """Markdown table: one row per checkpoint, one Dice column per structure and the mean."""
    structures = list(dict.fromkeys(s for point in points for s in point.dice if s != OVERALL)) + [OVERALL]
    header = ["| trainer | checkpoint | training s | epochs | steps | batch | " + " | ".join(structures)
              + " | ponder time |", "|---|---|---:|---:|---:|---:|" + "---:|" * len(structures) + "---:|"]
    body = [f"| {p.trainer} | {p.checkpoint} | {p.training_seconds:.0f} | {p.epochs} | {p.steps} | {p.batch_size} | "
            + " | ".join(_number(p.dice.get(s, math.nan)) for s in structures)
            + f" | {_number(p.ponder_time, 2)} |" for p in points]
    return header + body


def _recorded_budget(fold_dir: Path) -> tuple[int, int]:
    """Iterations per epoch and batch size, as the trainer recorded them when it started."""
    from nnunet_rdvit.training.fraction_trainers import SUBSET_FILE

    record_file = fold_dir / SUBSET_FILE
    try:
        budget = json.loads(record_file.read_text())["budget"]
        return int(budget["iterations_per_epoch"]), int(budget["batch_size"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{record_file} is missing or unreadable; it is written when a data-fraction trainer "
                        f"starts, and gives the iterations per epoch and batch size behind the steps") from None


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _jsonable(point: CurvePoint) -> dict:
    """The point with NaN as null (JSON has no NaN)."""
    fields = {key: _null_if_nan(value) for key, value in dataclasses.asdict(point).items()}
    fields["dice"] = {key: _null_if_nan(value) for key, value in point.dice.items()}
    return fields


def _null_if_nan(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _nan_if_null(value):
    return math.nan if value is None else value


def _number(value: float, digits: int = 3) -> str:
    return format_number(value, f".{digits}f")


def _budget(grid: ExperimentGrid) -> str:
    return grid.budget.describe() + ("" if grid.test_time_mirroring else ", no test-time mirroring")

"""Optional test-set evaluation: each trained model's fold ensemble predicts ``imagesTs``, scored against ``labelsTs``.

Prediction goes through the stock ``nnUNetv2_predict`` (with ``--continue_prediction``, so an interrupted run
resumes), scoring through nnU-Net's own ``compute_metrics_on_folder`` — the same Dice as its validation —
plus HD95 from :mod:`.aggregate`. Only models whose every fold of the grid has finished are evaluated.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from nnunet_rdvit.errors import UserError
from nnunet_rdvit.experiments.aggregate import CaseScore, read_summary, segmentation_reader, structure_names
from nnunet_rdvit.experiments.grid import ExperimentGrid
from nnunet_rdvit.experiments.runner import CPU_ENV, State, job_state
from nnunet_rdvit.stock_commands import run_stock_command


def evaluate_test_set(grid: ExperimentGrid, results: Path, raw: Path, out_dir: Path, device: str,
                      echo: TextIO | None = None) -> list[CaseScore]:
    """Per-case scores on the test set for every model of ``grid`` whose folds have all finished."""
    echo = sys.stdout if echo is None else echo
    images, labels = raw / grid.dataset / "imagesTs", raw / grid.dataset / "labelsTs"
    for folder, what in ((images, "test images"), (labels, "test labels")):
        if not folder.is_dir() or not any(folder.iterdir()):
            raise UserError(f"test-set evaluation needs {what} in {folder}; drop --test or add them")
    env = {**CPU_ENV, **os.environ} if device == "cpu" else dict(os.environ)
    scores: list[CaseScore] = []
    models = {(job.trainer, job.configuration): job for job in grid.jobs()}
    for (model, configuration), job in models.items():
        folds_done = all(job_state(grid.fold_dir(results, j)) is State.DONE for j in grid.jobs()
                         if (j.trainer, j.configuration) == (model, configuration))
        if not folds_done:
            print(f"Test set: skipping {model} {configuration}, not every fold has finished", file=echo)
            continue
        model_dir = grid.model_dir(results, job)
        predictions = out_dir / "test_predictions" / model_dir.name
        print(f"Test set: {model} {configuration}, ensemble of folds {', '.join(map(str, grid.folds))} -> "
              f"{predictions}", file=echo, flush=True)
        args = ["-i", images, "-o", predictions, "-d", grid.dataset, "-c", configuration, "-tr", model,
                "-p", grid.plans, "-f", *map(str, grid.folds), "-device", device, "--continue_prediction"]
        if device == "cpu":
            args += ["-npp", "1", "-nps", "1"]
        run_stock_command("nnUNetv2_predict", args, env, out_dir / "logs" / f"predict_{model_dir.name}.log", echo=echo)
        summary = score_predictions(model_dir, labels, predictions)
        names = structure_names(model_dataset_json(model_dir))
        rows, _ = read_summary(summary, names, segmentation_reader(model_dir / "plans.json"), labels)
        scores += [CaseScore(job.spec.base, model, job.spec.percent, configuration, None, case, structure, dice, hd)
                   for case, structure, dice, hd in rows]
    return scores


def score_predictions(model_dir: Path, labels: Path, predictions: Path) -> Path:
    """nnU-Net's evaluation of ``predictions`` against ``labels``; returns the summary.json it writes."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = PlansManager(str(model_dir / "plans.json"))
    dataset_json = model_dataset_json(model_dir)
    label_manager = plans.get_label_manager(dataset_json)
    summary = predictions / "summary.json"
    compute_metrics_on_folder(str(labels), str(predictions), str(summary), plans.image_reader_writer_class(),
                              dataset_json["file_ending"],
                              label_manager.foreground_regions if label_manager.has_regions
                              else label_manager.foreground_labels,
                              label_manager.ignore_label, num_processes=1)
    return summary


def model_dataset_json(model_dir: Path) -> dict:
    return json.loads((model_dir / "dataset.json").read_text())

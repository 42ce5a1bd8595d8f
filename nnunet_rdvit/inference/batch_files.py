"""The folder-level files of ``predict`` (``summary.json``, ``cardiac_indices.csv``, ``introspection.csv``): they
describe every case in the output folder, from this run and from earlier runs into the same folder.

Runs into one folder never overlap (:mod:`nnunet_rdvit.output_lock`); a later run merges: cases, patients and
introspection rows it did not redo are kept from the folder's earlier files, the ones it redid are replaced. One
folder holds the outputs of one model: a run with another model (folder, trainer, configuration, folds or
checkpoint) is refused before it segments anything, since a merged summary would mix them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from nnunet_rdvit.atomic import write_json_atomic
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.inference.tables import write_csv

SUMMARY_FILE = "summary.json"
INDICES_FILE = "cardiac_indices"  # .json per patient, .csv per patient and for the batch
INTROSPECTION_CSV = "introspection.csv"
_MODEL_IDENTITY = ("trainer", "configuration", "folds", "checkpoint")


def earlier_summary(output: Path, model: dict) -> dict | None:
    """The folder's ``summary.json`` from earlier runs (None if there is none); refuses another model's."""
    path = output / SUMMARY_FILE
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
        earlier, cases = summary["model"], summary["cases"]
        all(isinstance(case["name"], str) for case in cases)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not a summary written by predict ({type(error).__name__}: {error}); pass a new "
                        f"output folder, or move that file away") from None
    if _identity(earlier) != _identity(model):
        raise UserError(f"{output} holds the outputs of another model ({_shown(earlier)}; this run: {_shown(model)}); "
                        f"one output folder holds one model's outputs, so pass a new output folder")
    return summary


def write_batch_files(output: Path, model: dict, cases: list[dict], patients: list[dict],
                      introspection_rows: list[dict], seconds: float, earlier: dict | None) -> None:
    """Write the three folder-level files, merged with ``earlier`` (:func:`earlier_summary`)."""
    redone = {case["name"] for case in cases}
    kept = [case for case in (earlier or {}).get("cases", []) if case["name"] not in redone]
    merged = kept + cases
    done = [case for case in merged if case.get("ok")]
    write_json_atomic(output / SUMMARY_FILE, {
        "model": model,
        "cases": merged,
        "n_ok": len(done),
        "n_failed": len(merged) - len(done),
        "seconds": seconds,  # of the latest run
        "mean_seconds_prediction_per_volume":
            float(np.mean([case["seconds_prediction"] for case in done])) if done else None,
    })
    touched = {name.split("/")[0] for name in redone}
    records = _earlier_records(output, touched) + patients if earlier else patients
    if records:
        write_csv(output / f"{INDICES_FILE}.csv", [index_row(record) for record in
                                                   sorted(records, key=lambda record: record["patient"])])
    rows = (_earlier_introspection_rows(output, {name.split("/")[-1] for name in redone}) if earlier else []) \
        + introspection_rows
    if rows:
        write_csv(output / INTROSPECTION_CSV, rows)


def index_row(record: dict) -> dict:
    """One patient's ``cardiac_indices.json`` record as one CSV row."""
    row = {"patient": record["patient"], "ed_frame": record["frames"]["ED"], "es_frame": record["frames"]["ES"],
           **record["indices"]}
    for phase, volumes in record["volumes_ml"].items():
        row.update({f"{phase}_{structure}_ml": volume for structure, volume in volumes.items()})
    return row


def _earlier_records(output: Path, touched: set[str]) -> list[dict]:
    """Patients of earlier runs that this run did not redo, from their ``<patient>/cardiac_indices.json``."""
    records = []
    for path in sorted(output.glob(f"*/{INDICES_FILE}.json")):
        if path.parent.name in touched:
            continue
        try:
            record = json.loads(path.read_text())
            index_row(record)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not one of ours; it was never part of the batch table
        records.append(record)
    return records


def _earlier_introspection_rows(output: Path, redone_cases: set[str]) -> list[dict]:
    path = output / INTROSPECTION_CSV
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("case") not in redone_cases]


def _identity(model: dict) -> tuple:
    """Dataset and model folder names (not the absolute path: nnUNet_results may move), trainer, configuration,
    folds, checkpoint."""
    folder = Path(model.get("folder") or "")
    return (folder.parent.name, folder.name, *(json.dumps(model.get(key)) for key in _MODEL_IDENTITY))


def _shown(model: dict) -> str:
    folds = ", ".join(map(str, model.get("folds") or [])) or "?"
    return f"{model.get('trainer')} {model.get('configuration')} folds {folds} {model.get('checkpoint')} from " \
           f"{model.get('folder')}"

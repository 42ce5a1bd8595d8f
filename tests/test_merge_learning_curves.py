"""benchmarks/merge_learning_curves.py: tables of separate learning-curve runs joined into one table and figure,
refused when they do not compare one setting or hold a checkpoint twice."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from script_support import import_benchmark, run_main
from nnunet_rdvit.experiments.learning_curve import (CurvePoint, CurveSetting, read_learning_curves,
                                                     write_learning_curves)

SETTING = CurveSetting(dataset="Dataset027_ACDC", configuration="2d", fold=0, percent=100, plans="nnUNetPlans",
                       budget="30 minutes of training (epochs of 50 iterations), batch 8")


def _point(trainer: str, checkpoint: str, seconds: float, mean: float, ponder: float = math.nan) -> CurvePoint:
    return CurvePoint(trainer=trainer, model=f"{trainer}_frac100_min30_it50_bs8", configuration="2d", fold=0,
                      split="validation", checkpoint=checkpoint, training_seconds=seconds, epochs=int(seconds // 60),
                      iterations_per_epoch=50, batch_size=8, steps=50 * int(seconds // 60), ponder_time=ponder,
                      cases=40, dice={"RV": mean - 0.05, "MYO": mean, "LV": mean + 0.05, "mean": mean})


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch):
    return import_benchmark(monkeypatch, "merge_learning_curves")


def _table(folder: Path, points: list[CurvePoint], setting: CurveSetting = SETTING) -> Path:
    write_learning_curves(points, setting, folder)
    return folder / "learning_curves.json"


def test_a_written_table_reads_back_the_same(tmp_path: Path) -> None:
    points = [_point("RDViTTrainer", "checkpoint_at_300s.pth", 300, 0.5, ponder=3.2),
              _point("ViTTrainer", "checkpoint_final.pth", 1800, 0.8)]
    setting, read = read_learning_curves(_table(tmp_path, points))
    assert setting == SETTING
    assert read[0] == points[0]
    assert math.isnan(read[1].ponder_time)  # no ACT: null in the JSON, NaN again when read
    assert dataclasses.replace(read[1], ponder_time=0.0) == dataclasses.replace(points[1], ponder_time=0.0)


def test_merged_table_and_figure_hold_every_trainer(tmp_path: Path, script, capsys) -> None:
    first = _table(tmp_path / "a", [_point("RDViTTrainer", "checkpoint_at_300s.pth", 300, 0.5, ponder=3.3),
                                    _point("RDViTTrainer", "checkpoint_final.pth", 1800, 0.85, ponder=3.2)])
    second = _table(tmp_path / "b", [_point("nnUNetTrainer", "checkpoint_final.pth", 1800, 0.7)])
    out = tmp_path / "merged"

    code, printed, errors = run_main(script, [str(first), str(second), "-o", str(out)], capsys)

    assert code == 0, errors
    merged = json.loads((out / "learning_curves.json").read_text())
    assert [(p["trainer"], p["checkpoint"]) for p in merged["points"]] == [
        ("RDViTTrainer", "checkpoint_at_300s.pth"), ("RDViTTrainer", "checkpoint_final.pth"),
        ("nnUNetTrainer", "checkpoint_final.pth")]
    assert {key: merged[key] for key in ("dataset", "configuration", "fold", "budget")} == {
        "dataset": "Dataset027_ACDC", "configuration": "2d", "fold": 0, "budget": SETTING.budget}
    assert "| nnUNetTrainer | checkpoint_final.pth | 1800 |" in printed
    assert "| RDViTTrainer | checkpoint_final.pth | 1800 | 30 | 1500 | 8 | 0.800 | 0.850 | 0.900 | 0.850 | 3.20 |" \
        in (out / "learning_curves.md").read_text()
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tables_of_different_settings_or_the_same_checkpoint_twice_are_refused(tmp_path: Path, script,
                                                                                capsys) -> None:
    rdvit = _table(tmp_path / "a", [_point("RDViTTrainer", "checkpoint_final.pth", 1800, 0.85, ponder=3.2)])
    longer = _table(tmp_path / "b", [_point("ViTTrainer", "checkpoint_final.pth", 7200, 0.8)],
                    dataclasses.replace(SETTING, budget="120 minutes of training (epochs of 50 iterations), batch 8"))
    again = _table(tmp_path / "c", [_point("RDViTTrainer", "checkpoint_final.pth", 1800, 0.85, ponder=3.2)])
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"dataset": "Dataset027_ACDC", "configuration": "2d", "fold": 0, "budget": "…",
                               "points": []}))  # before the table recorded its data fraction and plans

    cases = [([rdvit, longer], "differ in budget"),
             ([rdvit, again], "RDViTTrainer_frac100_min30_it50_bs8 checkpoint_final.pth (validation) is in both"),
             ([old], "is not a learning-curve table of this version"),
             ([tmp_path / "missing.json"], "missing.json")]
    for tables, message in cases:
        out = tmp_path / "merged"
        code, printed, errors = run_main(script, [*map(str, tables), "-o", str(out)], capsys)
        assert code == 2 and message in errors, (tables, errors)
        assert not out.exists()  # nothing written

    code, printed, errors = run_main(script, [str(rdvit), "-o", str(rdvit.parent)], capsys)
    assert code == 2 and "holds one of the tables being merged" in errors

"""RD-ViT ablation trainers: the component each one removes, a training step each, random loop counts, lookup by
name (nnU-Net's and the data-fraction parser), the ``--ablation`` grid and the ablation table."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from plans_support import minimal_plans
from nnunet_rdvit import cli
from nnunet_rdvit.ablation_names import ABLATIONS, FULL_MODEL
from nnunet_rdvit.experiments.ablation import REFERENCE_CHANGE, ablation_rows
from nnunet_rdvit.experiments.aggregate import OVERALL, CaseScore, summarise_over_folds
from nnunet_rdvit.experiments.grid import ExperimentGrid
from nnunet_rdvit.experiments.report import ExperimentResults, ablation_table, markdown_report, write_report
from nnunet_rdvit.fraction_trainer_names import FractionTrainerSpec, TrainingBudget, parse_fraction_trainer_name
from nnunet_rdvit.networks import RDViT
from nnunet_rdvit.networks.recurrent_core import DepthwiseLoRA, LTIInjection
from nnunet_rdvit.training import RDViTTrainer, RDViTTrainer_RandomLoops
from nnunet_rdvit.training.ablation_trainers import ABLATION_TRAINERS, loop_count_override
from nnunet_rdvit.training.loop_sampling import LoopCountDistribution

HALTING = {"core.halting.weight", "core.halting.bias"}
LORA = {"core.lora.down.weight", "core.lora.up.weight", "core.lora.scales"}
INJECTION = {"core.injection.log_A", "core.injection.log_dt", "core.injection.B"}


def test_every_ablation_has_a_trainer_and_a_description() -> None:
    assert list(ABLATION_TRAINERS) == list(ABLATIONS)
    assert all(issubclass(trainer, RDViTTrainer) for trainer in ABLATION_TRAINERS.values())


def _tiny_plans() -> dict:
    from nnunet_rdvit.training.token_grid import fit_plans_to_tokens

    plans = minimal_plans([32, 32])
    fit_plans_to_tokens(plans, "2d", None)
    return plans


def _network(trainer: type[RDViTTrainer]) -> RDViT:
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(_tiny_plans())
    return trainer.build_network_architecture(manager, manager.get_configuration("2d"), 1, 3, False)


@pytest.mark.parametrize("name, removed", [
    ("RDViTTrainer_NoACT", HALTING),
    ("RDViTTrainer_NoLoRA", LORA),
    ("RDViTTrainer_NoLTI", INJECTION),
    ("RDViTTrainer_SingleLoop", HALTING),
    ("RDViTTrainer_RandomLoops", set()),
])
def test_each_ablation_removes_exactly_its_component(name: str, removed: set[str]) -> None:
    full, variant = _network(RDViTTrainer), _network(ABLATION_TRAINERS[name])
    full_shapes = {n: p.shape for n, p in full.named_parameters()}
    variant_shapes = {n: p.shape for n, p in variant.named_parameters()}
    assert removed <= set(full_shapes)  # the full model has every component
    assert set(full_shapes) - set(variant_shapes) == removed and set(variant_shapes) <= set(full_shapes)
    changed = {n for n, shape in variant_shapes.items() if full_shapes[n] != shape}
    core = variant.core
    if name == "RDViTTrainer_SingleLoop":
        assert core.num_loops == 1 and changed == {"core.lora.scales"}  # one LoRA scale per loop
    else:
        assert core.num_loops == full.core.num_loops == 6 and not changed
    assert (core.halting is None) == (not core.act) == (HALTING <= removed)
    assert any(isinstance(m, DepthwiseLoRA) for m in variant.modules()) == (name != "RDViTTrainer_NoLoRA")
    assert any(isinstance(m, LTIInjection) for m in variant.modules()) == (name != "RDViTTrainer_NoLTI")
    assert variant(torch.randn(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_loop_count_distribution_range_mean_and_reproducibility() -> None:
    distribution = LoopCountDistribution.around(6)
    assert (distribution.low, distribution.high) == (1, 12)
    assert LoopCountDistribution.around(6, min_loops=3, max_factor=3).low == 3
    assert LoopCountDistribution.around(6, max_factor=3).high == 18
    with pytest.raises(ValueError, match="T ≥ 2"):
        LoopCountDistribution.around(1)

    draws = np.array([distribution.sample(0, 0, step) for step in range(4000)])
    assert draws.min() == 1 and draws.max() == 12 and len(set(draws)) == 12
    assert draws.mean() == pytest.approx(5.8, abs=0.2)  # E = T = 6 before clipping (see loop_sampling)
    assert np.median(draws) == 5
    assert np.mean(draws == 12) == pytest.approx(0.07, abs=0.015)  # 5 % clipped from above + 2 % drawn as 12
    sequence = [distribution.sample(0, 3, step) for step in range(20)]
    assert sequence == [distribution.sample(0, 3, step) for step in range(20)]
    assert sequence != [distribution.sample(1, 3, step) for step in range(20)]


def test_loop_count_override_only_inside_the_block() -> None:
    network = RDViT(1, 2, (16, 16), (4, 4), embed_dim=16, num_heads=2, num_loops=3, act=False)
    x = torch.randn(1, 1, 16, 16)
    with loop_count_override(network, 7):
        network(x)
        assert network.last_aux.loops_executed == 7
        network(x, n_loops=2)  # the override wins over a count given by the caller
        assert network.last_aux.loops_executed == 7
    network(x)
    assert network.last_aux.loops_executed == 3


# --- training steps on the tiny preprocessed dataset --------------------------------------------------------------


class RandomLoopsFixedDepth(RDViTTrainer_RandomLoops):
    """Without ACT every token runs exactly the drawn count, so the executed loops show what was drawn."""

    network_kwargs = {"act": False}


@pytest.fixture
def make_trainer(tiny_workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("nnUNet_raw", str(tiny_workspace.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(tiny_workspace.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    base = tiny_workspace.preprocessed / tiny_workspace.dataset

    def make(trainer_class: type[RDViTTrainer]) -> RDViTTrainer:
        plans = json.loads((base / "nnUNetPlans.json").read_text())
        plans["continue_training"] = False
        trainer = trainer_class(plans, "2d", 0, json.loads((base / "dataset.json").read_text()),
                                device=torch.device("cpu"))
        trainer.initialize()
        return trainer

    return make


def _batch(trainer: RDViTTrainer, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    shape = (2, *trainer.configuration_manager.patch_size)
    return {"data": torch.randn(shape[0], trainer.num_input_channels, *shape[1:], generator=generator),
            "target": torch.randint(0, trainer.label_manager.num_segmentation_heads, (shape[0], 1, *shape[1:]),
                                    generator=generator).to(torch.int16)}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_each_ablation_trainer_takes_a_training_step(make_trainer, name: str) -> None:
    trainer = make_trainer(ABLATION_TRAINERS[name])
    block = {n: p.detach().clone() for n, p in trainer.network.core.block.named_parameters()}
    result = trainer.train_step(_batch(trainer))
    assert np.isfinite(result["loss"])
    unchanged = [n for n, p in trainer.network.core.block.named_parameters() if torch.equal(p, block[n])]
    assert block and not unchanged
    assert ("ponder_loss" in result) == trainer.network.core.act


def test_random_loop_counts_drive_training_only(make_trainer) -> None:
    trainer = make_trainer(RandomLoopsFixedDepth)
    distribution = trainer.loop_count_distribution()
    assert (distribution.low, distribution.high) == (1, 12)
    outputs, executed = [], []
    for step in range(5):
        outputs.append(trainer.train_step(_batch(trainer, step)))
        executed.append(trainer.network.last_aux.loops_executed)
    drawn = [int(output["sampled_loops"]) for output in outputs]
    assert executed == drawn == [distribution.sample(0, 0, step) for step in range(5)]
    assert len(set(drawn)) > 1

    trainer.network.eval()
    trainer.validation_step(_batch(trainer))  # nnU-Net's validation (and the predictor) call the bare network
    assert trainer.network.last_aux.loops_executed == 6 and not trainer.network._forward_pre_hooks

    trainer.on_train_epoch_end(outputs)
    assert trainer.logger.local_logger.my_fantastic_logging["sampled_loops"] == [pytest.approx(np.mean(drawn))]
    trainer.current_epoch = 1
    trainer.on_train_epoch_start()
    assert int(trainer.train_step(_batch(trainer))["sampled_loops"]) == distribution.sample(0, 1, 0)


# --- names ---------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("nnunetv2.training.nnUNetTrainer.nnunet_rdvit") is None,
                    reason="editable install: nnU-Net finds the trainers through nnUNet_extTrainer")
def test_names_resolve_through_nnunets_lookup_and_the_fraction_parser() -> None:
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    for name, trainer in ABLATION_TRAINERS.items():
        assert recursive_find_trainer_class_by_name(name) is trainer
        assert issubclass(recursive_find_trainer_class_by_name(f"{name}_frac100"), trainer)
    name = "RDViTTrainer_NoLTI_frac25_ep2_it3_bs2_notta"
    assert parse_fraction_trainer_name(name) == FractionTrainerSpec("RDViTTrainer_NoLTI", 25, TrainingBudget(2, 3, 2),
                                                                    test_time_mirroring=False)
    budgeted = recursive_find_trainer_class_by_name(name)
    assert budgeted.__name__ == name and issubclass(budgeted, ABLATION_TRAINERS["RDViTTrainer_NoLTI"])


# --- the --ablation grid and the ablation table ----------------------------------------------------------------------

DATASET = "Dataset997_Ablation"
STRUCTURES = ["RV", "LV"]


@pytest.fixture
def preprocessed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A preprocessed dataset as far as the runner looks, an empty results folder."""
    folder = tmp_path / "preprocessed"
    (folder / DATASET / "nnUNetPlans_2d").mkdir(parents=True)
    (folder / DATASET / "nnUNetPlans.json").write_text(json.dumps({"configurations": {
        "2d": {"data_identifier": "nnUNetPlans_2d"}}}))
    (folder / DATASET / "splits_final.json").write_text(json.dumps([{"train": [], "val": []}] * 5))
    (tmp_path / "results").mkdir()
    monkeypatch.setenv("nnUNet_preprocessed", str(folder))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.setattr(cli, "COMMANDS", ("experiment",))
    return folder


def test_ablation_flag_runs_the_full_model_and_every_ablation(preprocessed, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["experiment", "run", "-d", "997", "--ablation", "-f", "1", "--epochs", "2", "--iterations", "3",
            "-device", "cpu", "--dry-run"]
    assert cli.main(argv) == 0
    trainers = [line.split(" -tr ")[1].split()[0] for line in capsys.readouterr().out.splitlines()]
    assert trainers == [f"{name}_frac100_ep2_it3" for name in (FULL_MODEL, *ABLATIONS)]
    assert cli.main([*argv, "--fractions", "10", "100"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2 * (1 + len(ABLATIONS))
    assert cli.main([*argv, "-tr", "ViTTrainer"]) == 2
    assert "--ablation chooses the trainers" in capsys.readouterr().err


def _dice(trainer: str, fold: int, case: int, structure: str) -> float:
    """Known per-case Dice: NoACT is 0.02 + 0.001·case below the full model; NoLTI equals it; ViT is not an ablation."""
    value = 0.6 + 0.1 * STRUCTURES.index(structure) - 0.05 * fold + 0.01 * case
    return value - (0.02 + 0.001 * case if trainer == "RDViTTrainer_NoACT" else 0.0)


def _scores(trainers: tuple[str, ...]) -> list[CaseScore]:
    return [CaseScore(trainer, f"{trainer}_frac100", 100, "2d", fold, f"case{case}", structure,
                      _dice(trainer, fold, case, structure), math.nan)
            for trainer in trainers for fold in (0, 1) for case in range(3) for structure in STRUCTURES]


def test_ablation_table_on_known_scores(tmp_path: Path) -> None:
    trainers = ("RDViTTrainer", "ViTTrainer", "RDViTTrainer_NoLTI", "RDViTTrainer_NoACT")
    scores = _scores(trainers)
    summary = summarise_over_folds(scores, STRUCTURES)
    rows = ablation_rows(summary, scores, STRUCTURES, trainers, ("dice",))
    assert list(dict.fromkeys(r.trainer for r in rows)) == ["RDViTTrainer", "RDViTTrainer_NoACT", "RDViTTrainer_NoLTI"]
    by_key = {(r.trainer, r.structure): r for r in rows}
    reference = by_key[("RDViTTrainer", "LV")]
    assert reference.change == REFERENCE_CHANGE and math.isnan(reference.difference)
    assert (reference.n_folds, reference.mean) == (2, pytest.approx(0.685))
    assert reference.std == pytest.approx(0.05 / math.sqrt(2))
    no_act = by_key[("RDViTTrainer_NoACT", OVERALL)]
    # Six (fold, case) pairs, every difference negative and distinct: W = 0, exact two-sided p = 2 / 2^6.
    assert (no_act.n_pairs, no_act.difference, no_act.p_value) == (6, pytest.approx(-0.021), pytest.approx(2 / 64))
    assert no_act.mean == pytest.approx(0.635 - 0.021)
    no_lti = by_key[("RDViTTrainer_NoLTI", "RV")]
    assert no_lti.difference == 0 and math.isnan(no_lti.p_value)  # identical to the full model: nothing to test

    table = ablation_table(rows, "dice")
    assert table[0] == "| variant | fraction | configuration | folds | RV | LV | mean | change |"
    assert table[2] == "| RDViTTrainer | 100 % | 2d | 2 | 0.585 ± 0.035 | 0.685 ± 0.035 | 0.635 ± 0.035 | " \
                       f"{REFERENCE_CHANGE} |"
    assert table[3] == ("| RDViTTrainer_NoACT | 100 % | 2d | 2 | 0.564 ± 0.035 (Δ -0.021, p 0.031) | "
                        "0.664 ± 0.035 (Δ -0.021, p 0.031) | 0.614 ± 0.035 (Δ -0.021, p 0.031) | "
                        f"{ABLATIONS['RDViTTrainer_NoACT']} |")
    assert len(table) == 5

    assert ablation_rows(summary, scores, STRUCTURES, ("ViTTrainer", "RDViTTrainer_NoACT")) == []  # no full model
    assert ablation_rows(summary, scores, STRUCTURES, ("RDViTTrainer", "ViTTrainer")) == []  # no ablation

    grid = ExperimentGrid(DATASET, trainers, (100,), (0, 1), ("2d",))
    outcome = ExperimentResults(grid, STRUCTURES, scores, summary, [], [], 0, ablation=rows)
    paths = write_report(outcome, tmp_path)
    markdown = markdown_report(outcome)
    assert markdown.startswith(f"# RD-ViT ablations on {DATASET}") and table[3] in markdown
    assert "### HD95" not in markdown and "HD95" not in markdown  # Dice-only rows (as with --no-hd95)
    with open(paths["ablation table (CSV)"]) as file:
        written = list(csv.DictReader(file))
    assert len(written) == len(rows) and written[3]["trainer"] == "RDViTTrainer_NoACT"


def _write_finished_fold(results: Path, trainer: str, fold: int) -> None:
    """A fold as nnU-Net leaves it, as far as aggregation reads it."""
    model = results / DATASET / f"{trainer}_frac100__nnUNetPlans__2d"
    (model / f"fold_{fold}" / "validation").mkdir(parents=True)
    (model / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"")
    (model / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "RV": 1, "LV": 2}}))
    entries = [{"prediction_file": f"case{case}.nii.gz", "reference_file": f"case{case}.nii.gz",
                "metrics": {str(label): {"Dice": _dice(trainer, fold, case, structure)}
                            for label, structure in enumerate(STRUCTURES, start=1)}} for case in range(3)]
    (model / f"fold_{fold}" / "validation" / "summary.json").write_text(json.dumps({"metric_per_case": entries}))


def test_aggregate_ablation_prints_and_writes_the_table(preprocessed, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for trainer in (FULL_MODEL, "RDViTTrainer_NoACT"):
        for fold in (0, 1):
            _write_finished_fold(tmp_path / "results", trainer, fold)
    out = tmp_path / "report"
    assert cli.main(["experiment", "aggregate", "-d", "997", "--ablation", "-f", "0", "1", "--no-hd95",
                     "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert "| RDViTTrainer_NoACT | 100 % | 2d | 2 | 0.564 ± 0.035 (Δ -0.021, p 0.031) |" in printed.out
    assert "8 job(s) not finished" in printed.err  # the other 4 ablations × 2 folds
    written = list(csv.DictReader(open(out / "ablation.csv")))
    assert {r["trainer"] for r in written} == {FULL_MODEL, "RDViTTrainer_NoACT"}

"""The trainer registry: ``@register_trainer`` is what nnU-Net's ``-tr`` lookup, the package exports, the
data-fraction variants and the ablation grid read; the torch-free name lists agree with it and stay torch-free;
every training budget, the demo's included, is the one ``budget`` attribute."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nnunet_rdvit import ablation_names, fraction_trainer_names
from nnunet_rdvit.ablation_names import ABLATIONS, FULL_MODEL
from nnunet_rdvit.fraction_trainer_names import FRACTION_BASES, TimeBudget, TrainingBudget, parse_fraction_trainer_name
from nnunet_rdvit.training import RDViTTrainer, RDViTTrainer_demo, registry
from nnunet_rdvit.training.registry import ablation_classes, fraction_base_classes, lookup_trainers, register_trainer

TRAINERS_FOLDER = Path(__file__).resolve().parents[1] / "trainers"


@pytest.fixture
def find(monkeypatch: pytest.MonkeyPatch):
    """nnU-Net's own ``-tr`` lookup, seeing this checkout's ``trainers/`` folder; the registry and the torch-free
    lists are restored after the test."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(fraction_trainer_names, "FRACTION_BASES", FRACTION_BASES)
    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINERS_FOLDER))
    return recursive_find_trainer_class_by_name


def _declare(monkeypatch: pytest.MonkeyPatch, name: str, change: str | None = None) -> None:
    """What a new data-fraction base (with ``change``: a new ablation) needs besides its decorator: its name in
    the torch-free lists."""
    monkeypatch.setattr(fraction_trainer_names, "FRACTION_BASES", (*fraction_trainer_names.FRACTION_BASES, name))
    if change is not None:
        monkeypatch.setitem(ablation_names.ABLATIONS, name, change)


def test_the_package_trainers_are_registered_in_agreement_with_the_torch_free_lists(find) -> None:
    import nnunet_rdvit.training as training
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_rdvit.commands.experiment import ABLATION_GRID_TRAINERS

    assert list(fraction_base_classes()) == list(FRACTION_BASES)
    assert list(ablation_classes()) == list(ABLATIONS)
    assert ABLATION_GRID_TRAINERS == (FULL_MODEL, *ablation_classes())
    assert fraction_base_classes()["nnUNetTrainer"] is nnUNetTrainer and "nnUNetTrainer" not in lookup_trainers()
    assert sorted(training.__all__) == sorted(["TransformerTrainer", *lookup_trainers()])
    for name, trainer in lookup_trainers().items():
        assert getattr(training, name) is trainer and find(name) is trainer
    assert {"RDViTTrainer", "RDViTTrainer_MoE", "ViTTrainer", "RDViTTrainer_demo", *ABLATIONS} == set(lookup_trainers())


def test_a_registered_trainer_is_found_by_the_lookup(find) -> None:
    @register_trainer()
    class RDViTTrainer_RegistryProbe(RDViTTrainer):
        network_kwargs = {"num_loops": 2}

    assert find("RDViTTrainer_RegistryProbe") is RDViTTrainer_RegistryProbe
    assert parse_fraction_trainer_name("RDViTTrainer_RegistryProbe_frac10") is None  # not asked for


def test_a_registered_fraction_base_gets_data_fraction_variants(find, monkeypatch: pytest.MonkeyPatch) -> None:
    _declare(monkeypatch, "RDViTTrainer_FractionProbe")

    @register_trainer(fraction_variants=True)
    class RDViTTrainer_FractionProbe(RDViTTrainer):
        network_kwargs = {"num_loops": 2}

    variant = find("RDViTTrainer_FractionProbe_frac10_ep2_it3")
    assert variant.__name__ == "RDViTTrainer_FractionProbe_frac10_ep2_it3"
    assert issubclass(variant, RDViTTrainer_FractionProbe) and variant.budget == TrainingBudget(2, 3)
    assert find("RDViTTrainer_FractionProbe_frac10_ep2_it3") is variant


def test_a_registered_ablation_joins_the_ablation_grid(find, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnunet_rdvit.experiments.ablation import ablation_variants

    _declare(monkeypatch, "RDViTTrainer_NoProbe", "no probe: what the ablation table shows")

    @register_trainer(ablation=True)
    class RDViTTrainer_NoProbe(RDViTTrainer):
        network_kwargs = {"num_loops": 2}

    assert ablation_classes()["RDViTTrainer_NoProbe"] is RDViTTrainer_NoProbe
    assert ablation_variants([FULL_MODEL, "RDViTTrainer_NoProbe"]) == ["RDViTTrainer_NoProbe"]
    assert find("RDViTTrainer_NoProbe") is RDViTTrainer_NoProbe
    assert issubclass(find("RDViTTrainer_NoProbe_frac100"), RDViTTrainer_NoProbe)


def test_registration_refuses_what_the_torch_free_lists_disagree_with(find, monkeypatch: pytest.MonkeyPatch) -> None:
    class RDViTTrainer_Undeclared(RDViTTrainer):
        pass

    with pytest.raises(TypeError, match="is not in nnunet_rdvit.fraction_trainer_names.FRACTION_BASES"):
        register_trainer(fraction_variants=True)(RDViTTrainer_Undeclared)
    with pytest.raises(TypeError, match="is not in nnunet_rdvit.ablation_names.ABLATIONS"):
        register_trainer(ablation=True)(RDViTTrainer_Undeclared)

    class ViTTrainer(RDViTTrainer):  # a declared base, registered without its variants; then a name clash
        pass

    with pytest.raises(TypeError, match=r"fraction_variants=False.*is in .*FRACTION_BASES"):
        register_trainer()(ViTTrainer)
    with pytest.raises(TypeError, match="two trainers named ViTTrainer"):
        register_trainer(fraction_variants=True)(ViTTrainer)

    _declare(monkeypatch, "RDViTTrainer_Forgotten")
    with pytest.raises(TypeError, match="RDViTTrainer_Forgotten is declared in .*FRACTION_BASES.*@register_trainer"):
        fraction_base_classes()


def test_the_name_lists_and_the_command_line_need_no_torch() -> None:
    """The torch-free declarations exist for this: the CLI's parser (help texts), the grid and the ablation table."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "nnunetv2"):
                    raise ImportError(f"{name} imported")

        sys.meta_path.insert(0, Refuse())
        import nnunet_rdvit.experiments as experiments
        for module in ["nnunet_rdvit.fraction_trainer_names", "nnunet_rdvit.ablation_names",
                       *(f"nnunet_rdvit.experiments.{m.name}" for m in pkgutil.iter_modules(experiments.__path__))]:
            importlib.import_module(module)
        from nnunet_rdvit import cli
        cli.build_parser()
        print("torch-free")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch-free"


def test_the_demo_budget_is_the_name_suffix_budget(tiny_workspace, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from budget_support import make_trainer, use_workspace

    assert RDViTTrainer_demo.budget == parse_fraction_trainer_name("RDViTTrainer_frac100_ep10_it25").budget
    use_workspace(tiny_workspace, tmp_path, monkeypatch)
    for trainer in (make_trainer(tiny_workspace, RDViTTrainer_demo),
                    make_trainer(tiny_workspace, "RDViTTrainer_frac100_ep10_it25")):
        assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == \
            (10, 25, 5)


def test_a_time_budget_needs_the_class_that_counts_the_time() -> None:
    from nnunet_rdvit.training.time_budget import TimedTraining

    with pytest.raises(TypeError, match="needs TimedTraining"):
        type("RDViTTrainer_min5", (RDViTTrainer,), {"budget": TimeBudget(5)})
    assert type("Timed", (TimedTraining, RDViTTrainer), {"budget": TimeBudget(5)}).budget_seconds == 300

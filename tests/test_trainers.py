"""Trainer glue that does not need a dataset: token grid fitting, options, optimiser, schedule, loss."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from plans_support import minimal_plans
from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.training import RDViTTrainer, RDViTTrainer_MoE, ViTTrainer
from nnunet_rdvit.training.aux_loss import AuxiliaryLoss
from nnunet_rdvit.training.optim import ClippedAdamW, WarmupPolyLR, decay_parameter_groups
from nnunet_rdvit.training.token_grid import TOKEN_SIZE_KEY, default_token_size, fit_plans_to_tokens


def test_default_token_size_reproduces_the_paper_on_acdc_plans() -> None:
    assert default_token_size((256, 224)) == (16, 16)  # ACDC 2d
    assert default_token_size((20, 256, 224)) == (2, 16, 16)  # ACDC 3d_fullres, anisotropic
    assert default_token_size((96, 96)) == (8, 8)
    assert default_token_size((6, 48, 48)) == (1, 4, 4)


def _plans(patch: list[int]) -> dict:
    plans = minimal_plans(patch)
    plans["configurations"]["2d_child"] = {"inherits_from": "2d"}
    return plans


def test_patch_is_rounded_up_to_whole_tokens_in_the_plans() -> None:
    plans = _plans([250, 224])
    tokens = fit_plans_to_tokens(plans, "2d", (16, 16))
    assert tokens == (16, 16)
    assert plans["configurations"]["2d"]["patch_size"] == [256, 224]
    assert plans["configurations"]["2d"][TOKEN_SIZE_KEY] == [16, 16]
    again = copy.deepcopy(plans)
    assert fit_plans_to_tokens(again, "2d", None) == (16, 16) and again == plans  # idempotent


def test_inherited_configuration_gets_its_own_fitted_patch() -> None:
    plans = _plans([100, 60])
    assert fit_plans_to_tokens(plans, "2d_child", None) == (8, 4)
    assert plans["configurations"]["2d_child"]["patch_size"] == [104, 60]


def test_token_size_with_wrong_dimensionality_is_refused() -> None:
    with pytest.raises(ValueError, match="has 3 axes"):
        fit_plans_to_tokens(_plans([64, 64]), "2d", (2, 16, 16))
    with pytest.raises(ValueError, match="not in the plans"):
        fit_plans_to_tokens(_plans([64, 64]), "3d_fullres", None)


def test_unknown_network_option_names_the_valid_ones() -> None:
    class Typo(RDViTTrainer):
        network_kwargs = {"num_loop": 8}

    with pytest.raises(ValueError, match=r"unknown option\(s\) \['num_loop'\].*'num_loops'"):
        Typo.checked_network_kwargs()
    assert RDViTTrainer_MoE.checked_network_kwargs() == {"moe_experts": 6, "moe_top_k": 2}
    assert ViTTrainer.checked_network_kwargs() == {}


def test_build_network_architecture_works_on_the_class_like_the_predictor_calls_it() -> None:
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = _plans([64, 48])
    fit_plans_to_tokens(plans, "2d", None)
    manager = PlansManager(plans)
    for trainer in (RDViTTrainer, RDViTTrainer_MoE, ViTTrainer):
        network = trainer.build_network_architecture(manager, manager.get_configuration("2d"), 1, 4, False)
        assert network.token_size == (8, 4)
        assert network(torch.randn(1, 1, 64, 48)).shape == (1, 4, 64, 48)
    assert RDViTTrainer_MoE.build_network_architecture(manager, manager.get_configuration("2d"), 1, 4,
                                                       False).moe_layers()


def test_clipped_adamw_clips_the_global_norm_before_stepping() -> None:
    layer = nn.Linear(4, 4, bias=False)
    optimizer = ClippedAdamW(layer.parameters(), max_grad_norm=1.0, lr=0.1)
    layer.weight.grad = torch.full((4, 4), 10.0)
    optimizer.step()
    assert layer.weight.grad.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_weight_decay_skips_biases_norms_position_embedding_and_loop_scales() -> None:
    from nnunet_rdvit.networks import RDViT

    network = RDViT(1, 2, (16, 16), (4, 4), embed_dim=16, num_heads=2)
    decay, no_decay = decay_parameter_groups(network, 0.05)
    names = {id(p): n for n, p in network.named_parameters()}
    assert all(p.ndim >= 2 for p in decay["params"])
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert {"patch_embed.pos_embed", "core.lora.scales", "core.injection.log_A"} <= undecayed
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05


def test_warmup_then_polynomial_decay() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = WarmupPolyLR(optimizer, 1e-3, num_epochs=100, warmup_epochs=5)
    rates = []
    for epoch in range(100):
        schedule.step(epoch)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(1e-3 / 6) and rates[4] == pytest.approx(1e-3 * 5 / 6)
    assert rates[5] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[5:], rates[6:])) and rates[-1] < 2e-5


def test_auxiliary_loss_adds_the_weighted_terms_present() -> None:
    aux = AuxOutputs(ponder_loss=torch.tensor(3.0), balance_loss=torch.tensor(1.5), z_loss=torch.tensor(10.0))
    loss = AuxiliaryLoss(lambda output, target: torch.tensor(2.0), lambda: aux, 0.01, 0.1, 0.001)
    assert loss(None, None).item() == pytest.approx(2.0 + 0.03 + 0.15 + 0.01)
    vit_loss = AuxiliaryLoss(lambda output, target: torch.tensor(2.0), lambda: AuxOutputs(), 0.01, 0.1, 0.001)
    assert vit_loss(None, None).item() == pytest.approx(2.0)


MISSING_CONFIGURATION = "configuration '3d_lowres' is not in the plans 'nnUNetPlans' of Dataset998_Tiny (available: 2d)"


@pytest.mark.parametrize("trainer", ["RDViTTrainer", "ViTTrainer", "nnUNetTrainer_frac100", "RDViTTrainer_frac10_min5"])
def test_a_configuration_the_plans_lack_is_refused_before_nnunet_starts(trainer: str) -> None:
    from nnunet_rdvit.training.fraction_trainers import fraction_trainer
    from nnunet_rdvit.training.trainer_errors import TrainerSetupError

    plans = {"plans_name": "nnUNetPlans", "dataset_name": "Dataset998_Tiny", "configurations": {"2d": {}},
             "continue_training": False}
    cls = fraction_trainer(trainer) or {"RDViTTrainer": RDViTTrainer, "ViTTrainer": ViTTrainer}[trainer]
    with pytest.raises(TrainerSetupError, match="plan it first with nnUNetv2_plan_and_preprocess -c 3d_lowres") \
            as raised:
        cls(plans, "3d_lowres", 0, {}, torch.device("cpu"))
    assert MISSING_CONFIGURATION in str(raised.value)


def test_a_configuration_the_trainer_cannot_handle_is_refused() -> None:
    from nnunet_rdvit.training.trainer_errors import TrainerSetupError

    class WrongTokens(RDViTTrainer):
        token_size = (4, 4, 4)

    plans = {**_plans([32, 32]), "continue_training": False}
    with pytest.raises(TrainerSetupError, match="WrongTokens cannot train configuration '2d': token size .* 3 axes"):
        WrongTokens(plans, "2d", 0, {}, torch.device("cpu"))


def test_nnunetv2_train_with_a_missing_configuration_prints_one_line(tmp_path, monkeypatch) -> None:
    """Through the stock command: one ``error: ...`` line, no traceback, a failing exit status."""
    import json
    import os
    import subprocess
    from pathlib import Path

    from nnunet_rdvit.stock_commands import find_stock_command

    dataset = tmp_path / "preprocessed" / "Dataset998_Tiny"
    dataset.mkdir(parents=True)
    (dataset / "nnUNetPlans.json").write_text(json.dumps({"plans_name": "nnUNetPlans", "dataset_name": dataset.name,
                                                          "configurations": {"2d": {}}}))
    (dataset / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "x": 1}}))
    env = {**os.environ, "nnUNet_preprocessed": str(dataset.parent), "nnUNet_results": str(tmp_path / "results"),
           "nnUNet_raw": str(tmp_path / "raw"),
           "nnUNet_extTrainer": str(Path(__file__).resolve().parents[1] / "trainers")}
    done = subprocess.run([find_stock_command("nnUNetv2_train"), "998", "3d_lowres", "0", "-tr", "RDViTTrainer",
                           "-device", "cpu"], env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {MISSING_CONFIGURATION}")

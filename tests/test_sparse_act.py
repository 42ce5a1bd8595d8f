"""Token-sparse ACT: the same results as the dense loop, for less compute, chosen automatically at inference."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nnunet_rdvit.networks.block as block_module
from plans_support import minimal_plans
from nnunet_rdvit.networks import RDViT
from nnunet_rdvit.networks.block import TransformerBlock, make_feedforward

SETTINGS = {"2d": ((32, 24), (4, 4)), "3d": ((4, 16, 16), (2, 4, 4))}


def _staggered_rdvit(dims: str, moe_experts: int = 0, num_loops: int = 6) -> RDViT:
    """A small RD-ViT whose tokens halt at different loops (a spread of halting logits, a negative bias)."""
    torch.manual_seed(0)
    patch, tokens = SETTINGS[dims]
    model = RDViT(1, 4, patch, tokens, embed_dim=32, num_heads=2, num_loops=num_loops, moe_experts=moe_experts)
    with torch.no_grad():
        model.core.halting.weight.normal_(0.0, 0.5)
        model.core.halting.bias.fill_(-1.0)
    return model


def _forward(model: RDViT, x: torch.Tensor, sparse: bool):
    model.core.sparse_act = sparse
    with torch.no_grad():
        return model(x, return_aux=True)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("moe_experts", [0, 4])
@pytest.mark.parametrize("dims", ["2d", "3d"])
def test_sparse_equals_dense(dims: str, moe_experts: int, batch: int) -> None:
    model = _staggered_rdvit(dims, moe_experts).eval()
    x = torch.randn(batch, 1, *SETTINGS[dims][0])
    dense_logits, dense = _forward(model, x, sparse=False)
    sparse_logits, sparse = _forward(model, x, sparse=True)
    steps = dense.halting_steps
    assert steps.min() < steps.max() == model.core.num_loops, "the setup must stagger halting"
    assert torch.allclose(sparse_logits, dense_logits, atol=1e-5, rtol=1e-4)
    assert torch.equal(sparse.halting_steps, steps)
    assert sparse.loops_executed == dense.loops_executed
    assert torch.allclose(sparse.ponder_loss, dense.ponder_loss)
    if moe_experts:
        assert torch.equal(sparse.expert_counts, dense.expert_counts)


def test_block_queries_only_active_tokens_of_each_sample() -> None:
    """Different numbers of active tokens per sample (the padded batch) give the dense rows."""
    torch.manual_seed(0)
    block = TransformerBlock(32, 2, make_feedforward("swiglu", 32, 4.0)).eval()
    x = torch.randn(2, 20, 32)
    active = torch.rand(2, 20) < 0.5
    active[1] = False
    active[1, 3] = True
    dense, _ = block(x)
    sparse, _ = block(x, active)
    assert sparse.shape == (int(active.sum()), 32)
    assert torch.allclose(sparse, dense[active], atol=1e-5)


def _flops(model: RDViT, x: torch.Tensor, sparse: bool) -> int:
    model.core.sparse_act = sparse
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.core(model.embed(x)[0])
    return counter.get_total_flops()


def test_sparse_compute_falls_with_the_fraction_of_running_tokens() -> None:
    model = _staggered_rdvit("2d").eval()
    x = torch.randn(1, 1, *SETTINGS["2d"][0])
    with torch.no_grad():
        aux = model(x, return_aux=True)[1]
    running_fraction = aux.ponder_time.item() / aux.loops_executed
    ratio = _flops(model, x, sparse=True) / _flops(model, x, sparse=False)
    assert running_fraction < 0.8
    # Only the keys/values of halted tokens are still computed, so the saving tracks the running fraction.
    assert running_fraction <= ratio <= running_fraction + 0.25


def test_sparse_training_gives_the_dense_gradients() -> None:
    model = _staggered_rdvit("3d").train()
    x = torch.randn(2, 1, *SETTINGS["3d"][0])
    grads = []
    for sparse in (False, True):
        model.core.sparse_act = sparse
        model.zero_grad()
        logits, aux = model(x, return_aux=True)
        (logits.square().mean() + aux.ponder_loss).backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        assert torch.allclose(grads[1][name], grad, atol=1e-6, rtol=1e-4), name


def test_auto_mode_is_sparse_in_eval_and_dense_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = block_module.active_token_index
    monkeypatch.setattr(block_module, "active_token_index", lambda active: calls.append(1) or original(active))
    model = _staggered_rdvit("2d")
    x = torch.randn(1, 1, *SETTINGS["2d"][0])
    model.train()(x)
    assert not calls
    with torch.no_grad():
        model.eval()(x)
    assert calls


def test_nnunet_predictor_runs_the_sparse_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    patch, _ = SETTINGS["3d"]
    plans = minimal_plans(list(patch), "3d_fullres", "Dataset999_Sparse", architecture={})
    dataset_json = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3},
                    "numTraining": 1, "file_ending": ".nii.gz"}
    plans_manager = PlansManager(plans)
    calls = []
    original = block_module.active_token_index
    monkeypatch.setattr(block_module, "active_token_index", lambda active: calls.append(1) or original(active))
    model = _staggered_rdvit("3d")
    volume = torch.randn(1, 6, 20, 18)
    logits = {}
    for sparse in (None, False):
        model.core.sparse_act = sparse
        predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=False, allow_tqdm=False)
        predictor.manual_initialization(model, plans_manager, plans_manager.get_configuration("3d_fullres"), None,
                                        dataset_json, "RDViTTrainer", None)
        logits[sparse] = predictor.predict_sliding_window_return_logits(volume).float()
        assert bool(calls) == (sparse is None)
        calls.clear()
    assert torch.allclose(logits[None], logits[False], atol=1e-2)  # the predictor accumulates in fp16

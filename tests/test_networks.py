"""Invariants of the RD-ViT and ViT networks (docs/architecture.md, "Forward pass")."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from nnunet_rdvit.networks import RDViT, ViT
from nnunet_rdvit.networks.moe import MoEFeedForward
from nnunet_rdvit.networks.recurrent_core import LTIInjection, RecurrentCore, bernoulli_kl, loop_embedding

SMALL = {"embed_dim": 32, "num_heads": 2}


def _rdvit_2d(**kwargs) -> RDViT:
    torch.manual_seed(0)
    return RDViT(1, 4, (32, 32), (4, 4), **{**SMALL, **kwargs})


@pytest.mark.parametrize("log_rate", [-1e4, -100.0, -16.0, 0.0, 4.5, 100.0, 1e4, float("inf"), float("-inf")])
def test_lti_decay_stays_strictly_inside_unit_interval(log_rate: float) -> None:
    injection = LTIInjection(8)
    with torch.no_grad():
        injection.log_A.fill_(log_rate)
        injection.log_dt.fill_(0.0)
    decay = injection.decay()
    assert decay.dtype == torch.float32
    assert bool((decay > 0).all()) and bool((decay < 1).all())


def test_lti_decay_is_fp32_under_bf16_parameters() -> None:
    injection = LTIInjection(8).to(torch.bfloat16)
    with torch.no_grad():
        injection.log_A.fill_(-12.0)  # exp(-exp(-12)) rounds to 1 in bf16, not in fp32
    decay = injection.decay()
    assert decay.dtype == torch.float32 and bool((decay < 1).all())


def test_default_decay_is_exp_minus_one() -> None:
    assert torch.allclose(LTIInjection(4).decay(), torch.full((4,), torch.exp(torch.tensor(-1.0)).item()))


class ConstantBlock(nn.Module):
    """Stand-in for the shared block: every loop returns the same per-token vector, so the ACT output is
    exactly (Σ_t w_t) · value and the halting probability differs per token."""

    def __init__(self, values: torch.Tensor):
        super().__init__()
        self.values = values

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None):
        return (self.values[active] if active is not None else self.values), None


@pytest.mark.parametrize("bias", [-2.0, 0.0, 1.0])
def test_act_weights_sum_to_one_for_every_token(bias: float) -> None:
    torch.manual_seed(1)
    values = torch.randn(2, 50, 16)
    core = RecurrentCore(ConstantBlock(values), 16, num_loops=6, lora_rank=0, lti=False, halting_bias_init=bias)
    with torch.no_grad():
        core.halting.weight.normal_(0, 0.3)
        output, aux = core(torch.randn(2, 50, 16))
    assert torch.allclose(output, values, atol=1e-5)  # output = (Σ_t w_t) · value
    assert len(torch.unique(aux.halting_steps)) > 1, "tokens should halt at different loops in this setup"


def test_ponder_time_and_loss_bounds() -> None:
    for bias, expected in [(-30.0, 6.0), (30.0, 1.0)]:
        model = _rdvit_2d(num_loops=6, halting_bias_init=bias).eval()
        with torch.no_grad():
            _, aux = model(torch.randn(2, 1, 32, 32), return_aux=True)
        assert aux.ponder_time.item() == pytest.approx(expected)
    model = _rdvit_2d(num_loops=6).eval()
    with torch.no_grad():
        _, aux = model(torch.randn(2, 1, 32, 32), return_aux=True)
    assert 1.0 <= aux.ponder_time.item() <= 6.0
    assert aux.halting_steps.shape == (2, 8, 8)
    assert aux.halting_steps.min() >= 1 and aux.halting_steps.max() <= 6
    # Graves: N + R with R in (0, 1]
    assert aux.ponder_time.item() < aux.ponder_loss.item() <= aux.ponder_time.item() + 1


def test_min_loops_is_respected() -> None:
    model = _rdvit_2d(num_loops=6, min_loops=3, halting_bias_init=30.0).eval()
    with torch.no_grad():
        _, aux = model(torch.randn(1, 1, 32, 32), return_aux=True)
    assert aux.ponder_time.item() == pytest.approx(3.0)


def test_extra_loops_change_nothing_once_every_token_has_halted() -> None:
    model = _rdvit_2d(num_loops=6, halting_bias_init=3.0).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        logits, aux = model(x, return_aux=True)
        deeper, deeper_aux = model(x, n_loops=12, return_aux=True)
    assert aux.loops_executed < 6, "setup: every token should halt before the last trained loop"
    assert deeper_aux.loops_executed == aux.loops_executed
    assert torch.equal(logits, deeper)


def test_tokens_halted_early_keep_their_output_when_more_loops_run() -> None:
    torch.manual_seed(2)
    model = _rdvit_2d(num_loops=4, halting_bias_init=-0.5).eval()
    with torch.no_grad():
        model.core.halting.weight.normal_(0, 0.3)
        e = model.embed(torch.randn(2, 1, 32, 32))[0]
        short, short_aux = model.core(e, n_loops=4)
        long, long_aux = model.core(e, n_loops=10)
    halted_early = short_aux.halting_steps < 4
    assert halted_early.any() and (~halted_early).any(), "setup: need both early-halting and forced tokens"
    assert torch.equal(short_aux.halting_steps[halted_early], long_aux.halting_steps[halted_early])
    assert torch.allclose(short[halted_early], long[halted_early], atol=1e-6)


def test_depth_extrapolation_runs_beyond_trained_loops() -> None:
    model = _rdvit_2d(num_loops=3, halting_bias_init=-30.0).eval()
    with torch.no_grad():
        logits, aux = model(torch.randn(1, 1, 32, 32), n_loops=7, return_aux=True)
    assert aux.loops_executed == 7 and aux.ponder_time.item() == pytest.approx(7.0)
    assert torch.isfinite(logits).all()


def test_act_switched_off_at_call_time_equals_a_fixed_depth_core() -> None:
    model = _rdvit_2d(num_loops=3).eval()
    fixed = _rdvit_2d(num_loops=3, act=False).eval()
    fixed.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("core.halting.")})
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        logits, aux = model(x, n_loops=5, act=False, return_aux=True)
        expected = fixed(x, n_loops=5)
    torch.testing.assert_close(logits, expected)
    assert aux.ponder_loss is None and aux.loops_executed == 5 and bool((aux.halting_steps == 5).all())
    with pytest.raises(ValueError, match="needs a core built with ACT"):
        fixed(x, act=True)
    with pytest.raises(ValueError, match="only apply to recurrent networks"):
        ViT(1, 4, (32, 32), (4, 4), depth=2, **SMALL)(x, act=False)


def test_bernoulli_kl_vanishes_only_at_the_prior() -> None:
    p = torch.tensor([0.01, 0.2, 0.5, 0.99])
    kl = bernoulli_kl(p, 0.2)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7)
    assert bool((kl[[0, 2, 3]] > 0).all())


def test_halting_prior_gives_a_gradient_out_of_act_dead_zone() -> None:
    # Every token's first halting probability is past the threshold (σ(5) = 0.993 ≥ 0.99): each halts at loop 1
    # with weight 1 and remainder 1, so the ponder loss N + R is constant and sends its halting unit nothing.
    model = _rdvit_2d(num_loops=6, halting_bias_init=5.0, halting_prior=0.2).train()
    _, aux = model(torch.randn(2, 1, 32, 32), return_aux=True)
    assert aux.ponder_time.item() == pytest.approx(1.0)
    bias = model.core.halting.bias
    (ponder_gradient,) = torch.autograd.grad(aux.ponder_loss, bias, retain_graph=True, allow_unused=True)
    assert ponder_gradient is None or ponder_gradient.abs().item() == 0.0
    (prior_gradient,) = torch.autograd.grad(aux.halting_prior_loss, bias)
    assert prior_gradient.item() > 0, "descent must lower the halting bias, i.e. let tokens run more loops"


def test_halting_prior_is_checked_on_by_default_and_optional() -> None:
    with pytest.raises(ValueError, match="halting_prior must be in"):
        _rdvit_2d(halting_prior=1.0)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        _, default = _rdvit_2d().eval()(x, return_aux=True)
        _, plain = _rdvit_2d(halting_prior=None).eval()(x, return_aux=True)
    assert default.halting_prior_loss is not None and default.halting_prior_loss.item() > 0
    assert plain.halting_prior_loss is None


def test_loop_embedding_uses_first_eighth_of_channels() -> None:
    emb = loop_embedding(3, 64)
    assert emb.dtype == torch.float32 and emb[8:].abs().sum() == 0 and emb[:8].abs().sum() > 0
    assert not torch.equal(loop_embedding(3, 64), loop_embedding(4, 64))


def test_eval_mode_returns_plain_logits() -> None:
    for model in (_rdvit_2d().eval(), ViT(1, 4, (32, 32), (4, 4), depth=2, **SMALL).eval()):
        with torch.no_grad():
            out = model(torch.randn(2, 1, 32, 32))
        assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 32, 32)
        assert model.last_aux is not None


@pytest.mark.parametrize("decoder", ["light", "progressive"])
@pytest.mark.parametrize("patch, tokens", [((32, 32), (4, 4)), ((48, 32), (16, 8)), ((8, 32, 32), (2, 8, 8)),
                                           ((6, 24, 40), (1, 4, 8)), ((20, 32, 32), (2, 16, 16))])
def test_shapes_2d_and_3d(patch, tokens, decoder) -> None:
    for cls, kwargs in ((RDViT, {"num_loops": 2}), (RDViT, {"num_loops": 2, "moe_experts": 4}), (ViT, {"depth": 2})):
        model = cls(2, 3, patch, tokens, decoder=decoder, **SMALL, **kwargs)
        out, aux = model(torch.randn(2, 2, *patch), return_aux=True)
        assert out.shape == (2, 3, *patch)
        grid = tuple(p // t for p, t in zip(patch, tokens))
        if cls is RDViT:
            assert aux.halting_steps.shape == (2, *grid)
        if kwargs.get("moe_experts"):
            assert aux.expert_counts.shape == (2, *grid, 4)
            assert aux.balance_loss is not None and aux.z_loss is not None


def test_token_size_must_divide_patch() -> None:
    with pytest.raises(ValueError, match=r"axis 1 has 30 % 16 = 14"):
        RDViT(1, 4, (32, 30), (16, 16))
    model = _rdvit_2d()
    with pytest.raises(ValueError, match="must divide the input patch"):
        model(torch.randn(1, 1, 32, 30))


def test_deep_supervision_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="cannot do deep supervision"):
        RDViT(1, 4, (32, 32), (4, 4), deep_supervision=True)


def test_vit_tiny_3d_parameter_count_matches_paper_baseline() -> None:
    vit = ViT(1, 4, (16, 128, 128), (2, 16, 16), decoder="light", encoder_channels=())  # the paper's 3D setting
    params = sum(p.numel() for p in vit.parameters())
    assert 5.5e6 <= params <= 5.7e6
    moe = RDViT(1, 4, (16, 128, 128), (2, 16, 16), decoder="light", encoder_channels=(), moe_experts=8)
    assert sum(p.numel() for p in moe.parameters()) <= 0.55 * params


def test_built_by_nnunet_from_a_plans_entry() -> None:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    network = get_network_from_plans("nnunet_rdvit.networks.RDViT", {"patch_size": [32, 32], "token_size": [8, 8],
                                     "embed_dim": 32, "num_heads": 2}, [], 1, 4, deep_supervision=False)
    assert isinstance(network, RDViT)
    assert network(torch.randn(1, 1, 32, 32)).shape == (1, 4, 32, 32)


def _grads(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    logits, aux = model(x, return_aux=True)
    loss = logits.square().mean() + (aux.ponder_loss if aux.ponder_loss is not None else 0)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["rdvit", "rdvit_moe", "vit"])
def test_gradient_checkpointing_gives_the_same_gradients(kind: str) -> None:
    torch.manual_seed(3)
    if kind == "vit":
        plain = ViT(1, 4, (32, 32), (4, 4), depth=3, **SMALL)
        checkpointed = ViT(1, 4, (32, 32), (4, 4), depth=3, grad_checkpointing=True, **SMALL)
    else:
        extra = {"moe_experts": 4} if kind == "rdvit_moe" else {}
        plain = _rdvit_2d(num_loops=4, **extra)
        checkpointed = _rdvit_2d(num_loops=4, grad_checkpointing=True, **extra)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 1, 32, 32)
    expected, actual = _grads(plain, x), _grads(checkpointed, x)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.allclose(expected[name], actual[name], atol=1e-5, rtol=1e-4), name


def test_balance_loss_is_one_at_uniform_routing_and_larger_when_collapsed() -> None:
    moe = MoEFeedForward(16, 32, num_experts=4, top_k=1)
    x = torch.randn(64, 16)
    with torch.no_grad():
        moe.router.weight.zero_()
        _, uniform = moe(x)
        moe.router.weight.zero_()
        moe.router.weight[0].fill_(10.0)
        _, collapsed = moe(x.abs() + 1.0)
    assert uniform.balance_loss.item() == pytest.approx(1.0)
    assert collapsed.balance_loss.item() > 3.5  # → E = 4 when every token goes to one expert
    assert collapsed.expert_counts.tolist() == [64.0, 0.0, 0.0, 0.0]


def test_every_expert_gets_a_gradient_even_without_tokens() -> None:
    """What keeps DDP without find_unused_parameters working: stacked expert weights are always used."""
    moe = MoEFeedForward(8, 16, num_experts=4, top_k=1)
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[0].fill_(10.0)
    out, stats = moe(torch.rand(10, 8) + 1.0)
    out.sum().backward()
    assert stats.expert_counts[1:].sum() == 0
    assert moe.w_in.grad is not None and moe.w_out.grad is not None
    assert moe.w_in.grad[1:].abs().sum() == 0 and moe.w_in.grad[0].abs().sum() > 0


def test_moe_dispatch_matches_a_per_token_reference() -> None:
    torch.manual_seed(4)
    moe = MoEFeedForward(8, 16, num_experts=4, top_k=2)
    x = torch.randn(20, 8)
    out, stats = moe(x)
    probs = moe.router(x).softmax(-1)
    reference = torch.zeros_like(x)
    for token in range(20):
        chosen = stats.expert_index[token]
        gates = probs[token, chosen] / probs[token, chosen].sum()
        for gate, expert in zip(gates, chosen):
            gate_in, up = (x[token] @ moe.w_in[expert]).chunk(2)
            reference[token] += gate * ((torch.nn.functional.silu(gate_in) * up) @ moe.w_out[expert])
    assert torch.allclose(out, reference, atol=1e-5)


def test_aux_loss_free_bias_moves_towards_underloaded_experts() -> None:
    moe = MoEFeedForward(8, 16, num_experts=4, top_k=1, bias_update_rate=0.1).train()
    moe.record_counts(torch.tensor([10.0, 0.0, 5.0, 5.0]))
    moe.update_selection_bias()
    assert moe.selection_bias.tolist() == pytest.approx([-0.1, 0.1, 0.0, 0.0])  # loads .5, 0, .25, .25
    assert moe.pending_counts.sum() == 0


def test_training_forward_records_expert_counts_for_the_bias_update() -> None:
    model = _rdvit_2d(moe_experts=4, moe_bias_update_rate=0.01).train()
    model(torch.randn(2, 1, 32, 32))
    (moe,) = model.moe_layers()
    assert moe.pending_counts.sum() > 0
    before = moe.selection_bias.clone()
    moe.update_selection_bias()
    assert not torch.equal(before, moe.selection_bias)


def test_state_stays_finite_over_many_loops() -> None:
    model = _rdvit_2d(num_loops=6, halting_bias_init=-30.0, lti=True).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 1, 32, 32) * 10, n_loops=50)
    assert torch.isfinite(logits).all()


def test_state_dict_round_trip_reproduces_outputs() -> None:
    model = _rdvit_2d(moe_experts=4).eval()
    clone = copy.deepcopy(model)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))

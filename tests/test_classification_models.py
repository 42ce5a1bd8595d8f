"""Classification models: shapes, timm registration, loss identities, parameter ratios, FLOPs, and the
semantics that the papers pin down (Edge-RecViT's per-token depth, Raptor's phases and forcing)."""

from __future__ import annotations

import pytest
import timm
import torch

from nnunet_rdvit.classification import (
    MODEL_CONFIGS,
    BlockRecurrentViT,
    EdgeRecViT,
    RaptorViT,
    RecurrentDepthViT,
    VisionTransformer,
    create_classifier,
)
from nnunet_rdvit.classification.edge_recvit import depth_uniformity_loss, stability_loss
from nnunet_rdvit.classification.flops import count_parameters, flops_per_image
from nnunet_rdvit.classification.raptor import equal_phases, find_phases, teacher_forcing_probability
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.networks.moe import MoEFeedForward

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(img_size=32, patch_size=8, in_chans=3, num_classes=7, embed_dim=32, num_heads=2)
TINY_MODELS = {
    "vit": lambda: VisionTransformer(**TINY, depth=3),
    "bvit": lambda: BlockRecurrentViT(**TINY, num_loops=3),
    "bvit_te": lambda: BlockRecurrentViT(**TINY, num_loops=3, time_embedding=True),
    "rdvit": lambda: RecurrentDepthViT(**TINY, num_loops=3),
    "rdvit_moe_avgpool": lambda: RecurrentDepthViT(**TINY, num_loops=3, moe_experts=4, global_pool="avg"),
    "edge_recvit": lambda: EdgeRecViT(**TINY, depth=5),
    "edge_recvit_no_ranker": lambda: EdgeRecViT(**TINY, depth=5, ranker=False),
    "raptor": lambda: RaptorViT(**TINY, depth=4, phases=[1, 3]),
}


@pytest.mark.parametrize("name", TINY_MODELS)
def test_shapes_and_backward(name: str) -> None:
    torch.manual_seed(0)
    model = TINY_MODELS[name]()
    x = torch.randn(3, 3, 32, 32)
    logits = model(x)
    aux = model.last_aux
    assert logits.shape == (3, 7)
    assert model.forward_features(x).shape == (3, 1 + 16, 32)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (3, 32)
    if aux.halting_steps is not None:
        assert aux.halting_steps.shape == (3, 4, 4)  # the patch grid, without the CLS token
    logits.square().mean().backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trainable)


@pytest.mark.parametrize("name", ["bvit", "bvit_te", "rdvit", "edge_recvit"])
def test_recurrent_models_run_more_steps_than_trained(name: str) -> None:
    model = TINY_MODELS[name]().eval()
    x = torch.randn(2, 3, 32, 32)
    model.n_loops = 2 * model.num_loops
    deeper, aux = model(x), model.last_aux
    assert torch.isfinite(deeper).all() and aux.loops_executed <= 2 * model.num_loops
    model.n_loops = 1
    assert not torch.allclose(deeper, model(x))


def test_fixed_depth_models_reject_n_loops() -> None:
    model = TINY_MODELS["vit"]()
    model.n_loops = 4
    with pytest.raises(ValueError, match="fixed depth"):
        model(torch.randn(1, 3, 32, 32))


def test_timm_registry_creates_every_name_with_timm_data_config() -> None:
    assert set(timm.list_models("bvit*")) == {"bvit_small_patch16_224", "bvit_base_patch16_224",
                                             "bvit_te_small_patch16_224", "bvit_te_base_patch16_224"}
    assert set(MODEL_CONFIGS) <= set(timm.list_models())
    model = timm.create_model("bvit_base_patch16_224", img_size=32, patch_size=8, embed_dim=32, num_heads=2,
                              num_classes=5)
    assert isinstance(model, BlockRecurrentViT) and model.num_loops == 12
    assert timm.data.resolve_data_config({}, model=model)["input_size"] == (3, 32, 32)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_create_classifier_names_the_fix() -> None:
    with pytest.raises(UserError, match="did you mean bvit_base_patch16_224"):
        create_classifier("bvit_bse_patch16_224")
    with pytest.raises(UserError, match="no argument.*depthh"):
        create_classifier("vit_baseline_tiny_patch16_224", {"depthh": 3})


def test_parameter_ratios_match_the_papers() -> None:
    with torch.device("meta"):
        counts = {name: count_parameters(create_classifier(name)) for name in (
            "vit_baseline_tiny_patch16_224", "vit_baseline_small_patch16_224", "vit_baseline_base_patch16_224",
            "bvit_base_patch16_224", "edge_recvit_base_patch16_224")}
        deit_b = timm.create_model("deit_base_patch16_224")
    # timm's DeiT blocks exactly; timm's position table has one more row, for the CLS token
    assert counts["vit_baseline_base_patch16_224"] == count_parameters(deit_b) - 768
    assert round(counts["vit_baseline_tiny_patch16_224"] / 1e6, 1) == 5.7
    assert round(counts["vit_baseline_small_patch16_224"] / 1e6, 1) == 22.1
    assert 0.09 < counts["bvit_base_patch16_224"] / counts["vit_baseline_base_patch16_224"] < 0.11  # "a tenth"
    assert 22e6 < counts["edge_recvit_base_patch16_224"] < 25e6  # ≈23 M against DeiT-B's 86 M


def test_depth_uniformity_loss_is_one_at_uniform_assignment() -> None:
    depths = 6
    index = torch.arange(60) % depths  # every depth used equally
    skewed_probs = torch.softmax(torch.randn(60, depths), dim=-1)
    assert depth_uniformity_loss(skewed_probs, index).item() == pytest.approx(1.0)
    uniform_probs = torch.full((60, depths), 1 / depths)
    assert depth_uniformity_loss(uniform_probs, torch.zeros(60, dtype=torch.long)).item() == pytest.approx(1.0)
    collapsed = torch.zeros(60, depths)
    collapsed[:, 2] = 1
    assert depth_uniformity_loss(collapsed, torch.full((60,), 2)).item() == pytest.approx(depths)


def test_moe_balance_loss_is_one_at_uniform_routing() -> None:
    moe = MoEFeedForward(dim=8, hidden_dim=16, num_experts=4, top_k=1)
    torch.nn.init.zeros_(moe.router.weight)  # uniform router probabilities
    _, stats = moe(torch.randn(32, 8))
    assert stats.balance_loss.item() == pytest.approx(1.0)


def test_stability_loss_is_squared_logsumexp() -> None:
    logits = torch.randn(2, 5, 12)
    assert stability_loss(logits).item() == pytest.approx(torch.logsumexp(logits, -1).pow(2).mean().item())
    assert stability_loss(torch.full((4, 12), -torch.log(torch.tensor(12.0)).item())).item() == pytest.approx(0.0,
                                                                                                              abs=1e-10)


def test_edge_recvit_depth_semantics() -> None:
    """CLS takes all L layers; a depth-d token runs head + (d−1) shared passes (+ tail at L) and is then
    frozen; logits are scaled by the mean ranker confidence c̄."""
    torch.manual_seed(0)
    model = EdgeRecViT(**TINY, depth=5).eval()
    x = torch.randn(2, 3, 32, 32)
    logits, aux = model(x), model.last_aux
    tokens, _ = model.embed(x)
    probs = model.ranker(tokens[:, 1:]).softmax(-1)
    assert torch.equal(aux.halting_steps.flatten(1), probs.argmax(-1) + 1)
    assert torch.allclose(aux.confidence, probs.max(-1).values.mean(1))
    unscaled = model.head(model.norm(model.forward_blocks(tokens, None)[0])[:, 0])
    assert torch.allclose(logits, unscaled * aux.confidence[:, None], atol=1e-6)

    # a token ranked at depth 1 leaves the head block and is never touched again
    depth_one = (aux.halting_steps.flatten(1) == 1).nonzero()
    assert len(depth_one)
    after_head = model.head_block(tokens)[0]
    final = model.forward_blocks(tokens, None)[0]
    b, i = depth_one[0]
    assert torch.equal(final[b, 1 + i], after_head[b, 1 + i])


def test_edge_recvit_without_ranker_is_a_shared_vit_at_full_depth() -> None:
    model = EdgeRecViT(**TINY, depth=5, ranker=False)
    model(torch.randn(1, 3, 32, 32))
    aux = model.last_aux
    assert (aux.halting_steps == 5).all() and aux.confidence is None and aux.stability_loss is None


def test_raptor_with_one_layer_per_phase_reproduces_its_teacher() -> None:
    torch.manual_seed(0)
    teacher = VisionTransformer(**TINY, depth=4).eval()
    student = RaptorViT(**TINY, depth=4, phases=[1, 1, 1, 1])
    student.init_from_teacher(teacher)
    student.freeze_teacher_parts()  # what `classify distill` does
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(student.eval()(x), teacher(x), atol=1e-6)
    assert not student.head.weight.requires_grad and student.blocks[0].attn.q.weight.requires_grad


def test_raptor_phases_and_teacher_forcing_schedule() -> None:
    assert equal_phases(12, 5) == [3, 3, 2, 2, 2]
    similarity = torch.full((7, 7), 0.1)
    similarity[:3, :3] = similarity[3:, 3:] = 0.9  # two phases: layers 0-2 and 3-6
    assert find_phases(similarity, 2) == [3, 4]
    assert [teacher_forcing_probability(p) for p in (0.0, 0.125, 0.25, 0.9)] == [1.0, 0.5, 0.0, 0.0]


def test_flop_counter_matches_the_analytic_vit_count() -> None:
    model = VisionTransformer(**TINY, depth=2)
    n, d, classes = 17, 32, 7
    per_block = 2 * n * (4 * d * d + 2 * 4 * d * d) + 2 * 2 * n * n * d
    expected = 2 * 16 * d * 3 * 8 * 8 + 2 * per_block + 2 * d * classes
    assert flops_per_image(model, torch.randn(2, 3, 32, 32)) == expected


def test_token_sparse_depth_saves_flops() -> None:
    torch.manual_seed(0)
    dense = EdgeRecViT(**TINY, depth=6, ranker=False)
    ranked = EdgeRecViT(**TINY, depth=6)
    ranked.load_state_dict(dense.state_dict(), strict=False)
    x = torch.randn(1, 3, 32, 32)
    assert flops_per_image(ranked, x) < flops_per_image(dense, x)

"""Every registered classifier is a timm model in full: the calling conventions, heads and pools,
intermediates and ``features_only``, gradient checkpointing, FX tracing, optimiser groups and
pretrained-cfg fields that timm's own model tests check — pinned here on tiny geometries, for every name
in the registry."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models import create_feature_extractor, get_graph_node_names, group_parameters
from timm.optim import create_optimizer_v2


from nnunet_rdvit.classification import MODEL_CONFIGS, RaptorViT, RecurrentDepthViT

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(img_size=32, patch_size=8, embed_dim=32, num_heads=2)  # 4×4 patches + CLS, 12 layers' worth
NAMES = sorted(MODEL_CONFIGS)
GRID, WIDTH = (4, 4), 32


def _create(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, **{**TINY, "num_classes": 7, **kwargs})


def _images(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", NAMES)
def test_features_head_split_pools_and_classifier_reset(name: str) -> None:
    model = _create(name).eval()
    x = _images()
    features = model.forward_features(x)
    assert features.shape == (2, 1 + 16, model.num_features)
    assert torch.equal(model(x), model.forward_head(features))
    pre_logits = model.forward_head(features, pre_logits=True)
    assert pre_logits.shape == (2, model.head_hidden_size) and model.head_hidden_size == WIDTH

    model.reset_classifier(0)
    assert model.num_classes == 0 and torch.equal(model(x), pre_logits)
    model.reset_classifier(3, "avg")
    assert model(x).shape == (2, 3) and torch.allclose(model.forward_head(features, pre_logits=True),
                                                       features[:, 1:].mean(1))
    unpooled = _create(name, num_classes=0, global_pool="").eval()
    assert unpooled(x).shape == (2, 1 + 16, WIDTH)
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(3, "max")


@pytest.mark.parametrize("name", NAMES)
def test_fine_tuning_with_a_new_head_trains_every_parameter(name: str) -> None:
    model = _create(name, num_classes=42).train()
    assert all(p.requires_grad for p in model.parameters())
    logits = model(_images())
    assert logits.shape == (2, 42)
    logits.mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name", NAMES)
def test_grad_checkpointing_gives_the_same_outputs_and_gradients(name: str) -> None:
    def loss_and_grads(model: torch.nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
        loss = model(_images()).square().mean()
        loss.backward()
        return loss.detach(), [p.grad for p in model.parameters()]

    plain_loss, plain_grads = loss_and_grads(_create(name).train())
    model = _create(name).train()
    model.set_grad_checkpointing()
    assert model.grad_checkpointing
    loss, grads = loss_and_grads(model)
    assert torch.allclose(loss, plain_loss, rtol=1e-5, atol=1e-6)
    assert all(torch.allclose(g, h, rtol=1e-4, atol=1e-6) for g, h in zip(grads, plain_grads))


@pytest.mark.parametrize("name", NAMES)
def test_forward_intermediates_follow_feature_info(name: str) -> None:
    model = _create(name).eval()
    x = _images()
    info = timm.models.FeatureInfo(model.feature_info, len(model.feature_info))
    assert len(info) == 12 and set(info.channels()) == {WIDTH} and set(info.reduction()) == {8}
    final, maps = model.forward_intermediates(x)
    assert torch.equal(final, model.forward_features(x))
    assert len(maps) == 12 and all(m.shape == (2, WIDTH, *GRID) for m in maps)

    tokens = model.forward_intermediates(x, indices=[0, -1], output_fmt="NLC", intermediates_only=True)
    assert [t.shape for t in tokens] == [(2, 16, WIDTH)] * 2
    assert torch.equal(tokens[1], maps[-1].flatten(2).transpose(1, 2))
    with_cls = model.forward_intermediates(x, indices=2, norm=True, return_prefix_tokens=True,
                                           intermediates_only=True)
    assert [(p.shape, c.shape) for p, c in with_cls] == [((2, WIDTH, *GRID), (2, 1, WIDTH))] * 2
    if not isinstance(model, RecurrentDepthViT):  # the last state is the final one (ACT mixes its states)
        assert torch.allclose(with_cls[-1][0].flatten(2).transpose(1, 2), final[:, 1:], atol=1e-6)
        assert torch.allclose(with_cls[-1][1], final[:, :1], atol=1e-6)
    with pytest.raises(ValueError, match="13"):
        model.forward_intermediates(x, indices=13)
    with pytest.raises(ValueError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NHWC")


@pytest.mark.parametrize("name", NAMES)
def test_features_only_returns_the_last_three_intermediates(name: str) -> None:
    backbone = _create(name, features_only=True).eval()
    model = _create(name).eval()  # same seed, same weights
    x = _images()
    assert backbone.feature_info.channels() == [WIDTH] * 3 and backbone.feature_info.reduction() == [8] * 3
    features = backbone(x)
    expected = model.forward_intermediates(x, indices=3, intermediates_only=True)
    assert len(features) == 3 and all(torch.equal(f, e) for f, e in zip(features, expected))
    chosen = _create(name, features_only=True, out_indices=(0, 5)).eval()(x)
    assert [f.shape for f in chosen] == [(2, WIDTH, *GRID)] * 2


@pytest.mark.parametrize("name", NAMES)
def test_fx_graph_equals_eager_and_trains(name: str) -> None:
    model = _create(name).eval()
    x = _images()
    eager = model(x)
    nodes = get_graph_node_names(model)[1]
    assert "norm" in nodes
    extractor = create_feature_extractor(model, {"norm": "features", nodes[-1]: "logits"})
    assert model.last_aux is None  # the trace's values were symbolic; eager auxiliaries come back below
    with torch.no_grad():
        out = extractor(x)
        assert torch.equal(out["logits"], eager) and torch.equal(out["features"], model.forward_features(x))
    assert model.last_aux is not None

    trained = create_feature_extractor(_create(name, num_classes=42).train(), [nodes[-1]])
    logits = trained(x)[nodes[-1]]
    logits.mean().backward()
    assert logits.shape == (2, 42) and all(p.grad is not None for p in trained.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_optimiser_contract_no_weight_decay_and_layer_groups(name: str) -> None:
    model = _create(name)
    names = dict(model.named_parameters())
    assert model.no_weight_decay() <= set(names)
    groups = group_parameters(model, model.group_matcher())
    ordered = list(groups.values())
    assert "cls_token" in ordered[0] and "patch_embed.proj.weight" in ordered[0]
    assert "head.weight" in ordered[-1] and len(ordered) >= 3
    assert sorted(n for group in ordered for n in group) == sorted(names)
    create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.75)


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_cfg_describes_the_built_model(name: str) -> None:
    model = _create(name)
    cfg = model.pretrained_cfg
    assert timm.data.resolve_data_config({}, model=model)["input_size"] == (3, 32, 32)
    state = model.state_dict()
    assert f"{cfg['first_conv']}.weight" in state and f"{cfg['classifier']}.weight" in state
    assert cfg["fixed_input_size"] and cfg["num_classes"] == 1000 and cfg["pool_size"] is None
    one_channel = _create(name, in_chans=1, img_size=48, features_only=True)
    assert one_channel.pretrained_cfg["input_size"] == (1, 48, 48)


@pytest.mark.parametrize("name", [n for n in NAMES if MODEL_CONFIGS[n][0] is not RaptorViT
                                  and not n.startswith("vit_baseline")])
def test_call_time_depth_reaches_forward_intermediates_and_fx(name: str) -> None:
    model = _create(name).eval()
    x = _images()
    trained = len(model.intermediate_modules())
    deeper = model.num_loops + 3
    maps = model.forward_intermediates(x, n_loops=deeper, intermediates_only=True)
    assert len(maps) == trained + 3  # indices count the steps of this pass
    reference = model.forward_head(model.forward_features(x, n_loops=deeper))
    model.n_loops = deeper
    assert torch.equal(model(x), reference)
    extractor = create_feature_extractor(model, [get_graph_node_names(model)[1][-1]])  # traced at that depth
    with torch.no_grad():
        assert torch.equal(next(iter(extractor(x).values())), reference)


def test_fixed_depth_models_refuse_a_call_time_depth() -> None:
    for name in ("vit_baseline_tiny_patch16_224", "raptor_tiny_patch16_224"):
        with pytest.raises(ValueError, match="fixed depth"):
            _create(name).forward_intermediates(_images(), n_loops=4)


def test_act_intermediates_repeat_the_frozen_state_after_every_token_halted() -> None:
    model = _create("rdvit_tiny_patch16_224", min_loops=1).eval()
    torch.nn.init.constant_(model.core.halting.bias, 20.0)  # p ≈ 1: every token halts after loop 1
    maps = model.forward_intermediates(_images(), intermediates_only=True)
    assert model.last_aux.loops_executed == 1 and (model.last_aux.halting_steps == 1).all()
    assert len(maps) == 12 and all(torch.equal(m, maps[0]) for m in maps[1:])


def test_last_aux_maps_are_on_the_patch_grid() -> None:
    model = _create("rdvit_moe_small_patch16_224").eval()
    model(_images())
    aux = model.last_aux
    assert aux.halting_steps.shape == (2, *GRID) and aux.expert_counts.shape == (2, *GRID, 8)


def test_raptor_freezes_only_for_distillation() -> None:
    student = _create("raptor_tiny_patch16_224")
    assert all(p.requires_grad for p in student.parameters())
    student.freeze_teacher_parts()
    frozen = sorted(n for n, p in student.named_parameters() if not p.requires_grad)
    assert frozen == sorted(["cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias", "patch_embed.pos_embed",
                             "norm.weight", "norm.bias", "head.weight", "head.bias"])

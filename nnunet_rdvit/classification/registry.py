"""Registration of the classifiers in timm's model registry.

Importing this module (``import nnunet_rdvit.classification`` does) makes every name in
:data:`MODEL_CONFIGS` available to ``timm.create_model``, ``timm.list_models("bvit*")`` and timm's
data-config resolution; constructor arguments given to ``create_model`` override the defaults here.
No pretrained weights are published, so ``pretrained=True`` fails with timm's own message.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable

import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from nnunet_rdvit.classification.base import TokenClassifier, as_pair
from nnunet_rdvit.classification.bvit import BlockRecurrentViT
from nnunet_rdvit.classification.edge_recvit import EdgeRecViT
from nnunet_rdvit.classification.raptor import RaptorViT
from nnunet_rdvit.classification.rdvit import RecurrentDepthViT
from nnunet_rdvit.classification.vit import VisionTransformer
from nnunet_rdvit.errors import UserError

TINY = dict(embed_dim=192, num_heads=3)
SMALL = dict(embed_dim=384, num_heads=6)
BASE = dict(embed_dim=768, num_heads=12)

# name → (class, constructor arguments). Ti/S/B are DeiT's geometries; every model has 12 layers' worth
# of depth (12 blocks, 12 steps, 12 loops, or head + 10 shared + tail).
MODEL_CONFIGS: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "vit_baseline_tiny_patch16_224": (VisionTransformer, TINY),
    "vit_baseline_small_patch16_224": (VisionTransformer, SMALL),
    "vit_baseline_base_patch16_224": (VisionTransformer, BASE),
    "bvit_small_patch16_224": (BlockRecurrentViT, SMALL),
    "bvit_base_patch16_224": (BlockRecurrentViT, BASE),
    "bvit_te_small_patch16_224": (BlockRecurrentViT, dict(SMALL, time_embedding=True)),
    "bvit_te_base_patch16_224": (BlockRecurrentViT, dict(BASE, time_embedding=True)),
    "rdvit_tiny_patch16_224": (RecurrentDepthViT, TINY),
    "rdvit_small_patch16_224": (RecurrentDepthViT, SMALL),
    "rdvit_base_patch16_224": (RecurrentDepthViT, BASE),
    "rdvit_moe_small_patch16_224": (RecurrentDepthViT, dict(SMALL, moe_experts=8, moe_top_k=2)),
    "edge_recvit_tiny_patch16_224": (EdgeRecViT, TINY),
    "edge_recvit_small_patch16_224": (EdgeRecViT, SMALL),
    "edge_recvit_base_patch16_224": (EdgeRecViT, BASE),
    "raptor_tiny_patch16_224": (RaptorViT, TINY),
    "raptor_small_patch16_224": (RaptorViT, SMALL),
    "raptor_base_patch16_224": (RaptorViT, BASE),
}

default_cfgs = generate_default_cfgs({
    name: dict(
        url="", num_classes=1000, input_size=(3, 224, 224), pool_size=None, crop_pct=0.875,
        interpolation="bicubic", fixed_input_size=True, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
        first_conv="patch_embed.proj", classifier="head", license="apache-2.0",
    )
    for name in MODEL_CONFIGS
})


def _entrypoint(name: str, model_class: type[nn.Module], defaults: dict[str, Any]) -> Callable[..., nn.Module]:
    def create(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        kwargs = {**defaults, **kwargs}
        overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
        if "img_size" in kwargs or "in_chans" in kwargs:
            # the registered cfg says 224²; data configs (and features_only wrappers) must see the real size
            overlay["input_size"] = (kwargs.get("in_chans", 3), *as_pair(kwargs.get("img_size", 224)))
        # features_only=True: timm's getter wrapper over forward_intermediates, the last 3 by default (as ViT)
        return build_model_with_cfg(model_class, name, pretrained, pretrained_cfg_overlay=overlay,
                                    feature_cfg=dict(out_indices=3, feature_cls="getter"), **kwargs)

    create.__name__ = create.__qualname__ = name
    create.__doc__ = f"{model_class.__name__}({', '.join(f'{k}={v!r}' for k, v in defaults.items())})"
    return create


for _name, (_class, _defaults) in MODEL_CONFIGS.items():
    globals()[_name] = register_model(_entrypoint(_name, _class, _defaults))


def create_classifier(name: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """``timm.create_model(name, **kwargs)`` for the models registered here, with user-fixable errors."""
    if name not in MODEL_CONFIGS:
        close = [known for known in MODEL_CONFIGS if name and name in known][:4] or difflib.get_close_matches(
            name, MODEL_CONFIGS, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"unknown model {name!r}; {hint}run 'nnunet-rdvit classify models' for the list")
    model_class = MODEL_CONFIGS[name][0]
    accepted = {parameter for klass in model_class.__mro__ if issubclass(klass, TokenClassifier)
                for parameter in inspect.signature(klass.__init__).parameters} - {"self", "kwargs"}
    unknown = sorted(set(kwargs or {}) - accepted)
    if unknown:
        raise UserError(f"{name} has no argument(s) {unknown}; it accepts {sorted(accepted)}")
    try:
        return globals()[name](**(kwargs or {}))
    except ValueError as error:
        raise UserError(f"cannot build {name} with {kwargs}: {error}") from error

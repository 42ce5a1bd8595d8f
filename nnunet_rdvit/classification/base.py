"""What every classifier shares: patch embedding + CLS token → blocks → norm → pooled linear head.

The interface follows timm's ``VisionTransformer`` (``forward_features`` / ``forward_head``,
``num_classes``, ``reset_classifier``, ``no_weight_decay``; ``pretrained_cfg`` is set by timm's builder),
so timm's data, optimiser and training utilities apply. The patch embedding is the segmentation
networks' :class:`~nnunet_rdvit.networks.patch_embed.PatchEmbed`, so both sides tokenise identically.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.networks.block import TransformerBlock, make_feedforward, make_norm
from nnunet_rdvit.networks.moe import MoEFeedForward
from nnunet_rdvit.networks.patch_embed import PatchEmbed
from nnunet_rdvit.networks.segmentation import init_vit_weights

GLOBAL_POOLS = ("token", "avg")


def _pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class TokenClassifier(nn.Module):
    """Subclasses define :meth:`forward_blocks`; everything before and after it lives here.

    ``forward(x, n_loops=None, return_aux=False)`` returns logits (B, classes); with ``return_aux=True``
    it returns ``(logits, AuxOutputs)``. The auxiliaries of the latest call are also kept in
    ``last_aux``. Per-token maps in the auxiliaries (``halting_steps``, ``expert_counts``) are
    returned on the patch grid, (B, H', W'[, E]), without the CLS token.

    ``trained_loops`` is the number of recurrent steps the model trains with (``None`` for models of
    fixed depth); ``n_loops`` at call time may differ from it (depth extrapolation).

    The constructor arguments here are shared by every model (subclasses pass them on as ``**kwargs``);
    ``num_heads``, ``mlp_ratio``, ``ffn`` and ``norm`` describe the blocks :meth:`new_block` builds.
    """

    trained_loops: int | None = None

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "token",
        embed_dim: int = 768,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        ffn: str = "mlp",
        norm: str = "layernorm",
    ):
        super().__init__()
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"unknown global_pool {global_pool!r}; choose one of {GLOBAL_POOLS}")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.embed_dim = embed_dim
        self.num_heads, self.mlp_ratio, self.ffn_kind, self.norm_kind = num_heads, mlp_ratio, ffn, norm
        self.patch_embed = PatchEmbed(in_chans, embed_dim, _pair(img_size), _pair(patch_size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.norm = make_norm(norm, embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.last_aux: AuxOutputs | None = None

    def new_block(self, feedforward: nn.Module | None = None) -> TransformerBlock:
        """A pre-norm block of this model's geometry (feed-forward from ``ffn`` unless one is given)."""
        if feedforward is None:
            feedforward = make_feedforward(self.ffn_kind, self.embed_dim, self.mlp_ratio)
        return TransformerBlock(self.embed_dim, self.num_heads, feedforward, self.norm_kind)

    @property
    def input_size(self) -> tuple[int, int, int]:
        """(C, H, W) the position embedding was built for."""
        embed = self.patch_embed
        return (embed.proj.in_channels, *(g * t for g, t in zip(embed.grid_size, embed.token_size)))

    def init_weights(self) -> None:
        """timm's ViT initialisation; subclasses call it once all their modules exist."""
        self.apply(init_vit_weights)
        nn.init.normal_(self.cls_token, std=1e-6)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameter names AdamW must not decay (timm's convention, read by the optimiser factory)."""
        return {"cls_token", "patch_embed.pos_embed"}

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise ValueError(f"unknown global_pool {global_pool!r}; choose one of {GLOBAL_POOLS}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def moe_layers(self) -> list[MoEFeedForward]:
        return [m for m in self.modules() if isinstance(m, MoEFeedForward)]

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Image (B, C, H, W) → tokens (B, 1 + N, D) with the CLS token first, and the patch grid."""
        tokens, grid = self.patch_embed(x)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1), grid

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, **kwargs: Any
    ) -> tuple[torch.Tensor, AuxOutputs]:
        """Tokens (B, 1 + N, D) → tokens and auxiliaries; per-token maps cover all 1 + N tokens."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor, n_loops: int | None = None, **kwargs: Any) -> torch.Tensor:
        tokens, grid = self.embed(x)
        tokens, aux = self.forward_blocks(tokens, n_loops, **kwargs)
        if aux.halting_steps is not None:
            aux.halting_steps = aux.halting_steps[:, 1:].reshape(x.shape[0], *grid)
        if aux.expert_counts is not None:
            aux.expert_counts = aux.expert_counts[:, 1:].reshape(x.shape[0], *grid, -1)
        self.last_aux = aux
        return self.norm(tokens)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = x[:, 0] if self.global_pool == "token" else x[:, 1:].mean(dim=1)
        return pooled if pre_logits else self.head(pooled)

    def forward(
        self, x: torch.Tensor, n_loops: int | None = None, return_aux: bool = False, **kwargs: Any
    ) -> torch.Tensor | tuple[torch.Tensor, AuxOutputs]:
        logits = self.forward_head(self.forward_features(x, n_loops, **kwargs))
        return (logits, self.last_aux) if return_aux else logits


def fixed_depth(model: nn.Module, n_loops: int | None) -> None:
    """Raise for an ``n_loops`` given to a model whose depth is fixed."""
    if n_loops is not None:
        raise ValueError(f"n_loops only applies to recurrent models; {type(model).__name__} has a fixed depth")

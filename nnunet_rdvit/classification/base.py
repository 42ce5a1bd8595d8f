"""What every classifier shares: patch embedding + CLS token → blocks → norm → pooled linear head, and
timm's whole model contract on top of it.

The contract is that of timm's ``VisionTransformer``: ``forward(x)``, ``forward_features`` /
``forward_head(pre_logits=…)``, ``num_features`` / ``head_hidden_size``, ``reset_classifier``,
``no_weight_decay``, ``group_matcher``, ``set_grad_checkpointing``, ``forward_intermediates`` with
``feature_info`` and ``prune_intermediate_layers`` (so ``timm.create_model(…, features_only=True)``
works), and a forward that torch.fx can trace. The patch embedding is the segmentation networks'
:class:`~nnunet_rdvit.networks.patch_embed.PatchEmbed`, so both sides tokenise identically.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.fx
from timm.layers import register_notrace_module
from torch import nn
from torch.utils.checkpoint import checkpoint

from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.networks.block import TransformerBlock, make_feedforward, make_norm
from nnunet_rdvit.networks.moe import moe_layers
from nnunet_rdvit.networks.patch_embed import PatchEmbed
from nnunet_rdvit.networks.recurrent_core import RecurrentCore
from nnunet_rdvit.networks.segmentation import init_vit_weights

GLOBAL_POOLS = ("token", "avg", "")  # CLS token, mean of the patch tokens, none (all tokens, timm's '')

# Data-dependent Python that torch.fx cannot trace, kept whole as graph leaves by timm's FX helpers:
# the block's token-sparse mode (gathers as many tokens as are active, dense when all are) and the ACT
# loop (exits once every token has halted). Everything around them traces.
register_notrace_module(TransformerBlock)
register_notrace_module(RecurrentCore)


def as_pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def take_indices(count: int, indices: int | Sequence[int] | None) -> list[int]:
    """timm's intermediate selection: ``None`` all ``count``, an int n the last n, a sequence those given
    (negative ones from the end); returned absolute and checked against ``count``."""
    if indices is None:
        return list(range(count))
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(f"the last {indices} intermediates were asked for, but this pass has {count}")
        return list(range(count - indices, count))
    chosen = [count + i if i < 0 else i for i in indices]
    if not chosen or not all(0 <= i < count for i in chosen):
        raise ValueError(f"intermediate indices {list(indices)} must lie in [-{count}, {count - 1}] for this pass")
    return chosen


def _check_global_pool(global_pool: str) -> None:
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"unknown global_pool {global_pool!r}; choose one of {GLOBAL_POOLS}")


class TokenClassifier(nn.Module):
    """Subclasses define :meth:`forward_blocks`, :meth:`intermediate_modules` and :meth:`block_groups`; the
    rest lives here.

    ``forward(x)`` returns logits (B, classes) — timm's signature, so timm's training, feature-extraction
    and FX tools apply as they do to timm's ViT. Two things ride beside it:

    - ``n_loops`` (attribute, default ``None`` = the trained depth ``num_loops``): the loops ``forward(x)``
      runs; it may exceed ``num_loops`` (depth extrapolation). ``forward_features`` and
      ``forward_intermediates`` also take it as a keyword for one call. An FX trace records the depth
      set at trace time. Fixed-depth models (``num_loops is None``) refuse any value.
    - ``last_aux``: the :class:`AuxOutputs` of the latest forward (ponder loss, per-token depth, MoE
      statistics, …) with per-token maps (``halting_steps``, ``expert_counts``) on the patch grid,
      (B, H', W'[, E]), without the CLS token. Eager execution only: an FX graph returns tensors.

    The constructor arguments here are shared by every model (subclasses pass them on as ``**kwargs``).

    Args:
        img_size: input size (H, W) the position embedding is built for (an int: square).
        patch_size: pixels per token, per axis (an int: square).
        in_chans: image channels.
        num_classes: classes of the linear head; 0: no head (features only).
        global_pool: "token" (the CLS token), "avg" (mean of the patch tokens) or "" (every token).
        embed_dim: token width D.
        num_heads: attention heads of every block :meth:`new_block` builds.
        mlp_ratio: feed-forward hidden width over D.
        ffn: "mlp" or "swiglu".
        norm: "layernorm" or "rmsnorm".
        grad_checkpointing: recompute each block (step, loop) in the backward pass
            (:meth:`set_grad_checkpointing` switches it later).
    """

    num_loops: int | None = None  # the loops (steps, shared passes) it is built and trained with; None: fixed depth
    n_loops: int | None = None

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
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        _check_global_pool(global_pool)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_heads, self.mlp_ratio, self.ffn_kind, self.norm_kind = num_heads, mlp_ratio, ffn, norm
        self.grad_checkpointing = grad_checkpointing
        self.patch_embed = PatchEmbed(in_chans, embed_dim, as_pair(img_size), as_pair(patch_size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.norm = make_norm(norm, embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._pass: tuple[AuxOutputs, torch.Size] | None = None  # raw auxiliaries and patch grid, latest pass

    # --- what subclasses define -------------------------------------------------------------------------

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, states: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, AuxOutputs]:
        """Tokens (B, 1 + N, D) → tokens and auxiliaries (per-token maps cover all 1 + N tokens).

        ``n_loops`` is the call's depth (``None``: trained). ``states``, if given, receives the tokens
        after every layer / step / loop, :meth:`intermediate_modules` of them.
        """
        raise NotImplementedError

    def intermediate_modules(self, n_loops: int | None = None) -> list[str]:
        """For each intermediate state of a pass at ``n_loops``, the name of the module producing it."""
        raise NotImplementedError

    def block_groups(self) -> list[tuple[str, tuple[int, ...] | None]]:
        """(regex, ordinal) pairs of :meth:`group_matcher` for the blocks, in the order they run."""
        raise NotImplementedError

    # --- building blocks ------------------------------------------------------------------------------

    def new_block(self, feedforward: nn.Module | None = None) -> TransformerBlock:
        """A pre-norm block of this model's geometry (feed-forward from ``ffn`` unless one is given)."""
        if feedforward is None:
            feedforward = make_feedforward(self.ffn_kind, self.embed_dim, self.mlp_ratio)
        return TransformerBlock(self.embed_dim, self.num_heads, feedforward, self.norm_kind)

    def run_block(self, block: Callable[..., Any], *args: Any) -> Any:
        """``block(*args)``, through activation checkpointing while training with it enabled."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    @property
    def input_size(self) -> tuple[int, int, int]:
        """(C, H, W) the position embedding was built for."""
        embed = self.patch_embed
        return (embed.proj.in_channels, *(g * t for g, t in zip(embed.grid_size, embed.token_size)))

    def init_weights(self) -> None:
        """timm's ViT initialisation; subclasses call it once all their modules exist."""
        self.apply(init_vit_weights)
        nn.init.normal_(self.cls_token, std=1e-6)

    moe_layers = moe_layers

    # --- timm's model interface -------------------------------------------------------------------------

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameter names AdamW must not decay (timm's convention, read by the optimiser factory)."""
        return {"cls_token", "patch_embed.pos_embed"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for timm's layer-wise lr decay: embedding, then the blocks, then norm + head."""
        return dict(stem=r"^cls_token|^patch_embed", blocks=[*self.block_groups(), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block (step, loop) in the backward pass instead of storing its activations."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            _check_global_pool(global_pool)
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """timm's feature metadata: one entry per intermediate of a pass at the trained depth."""
        reduction = min(self.patch_embed.token_size)
        return [dict(module=name, num_chs=self.embed_dim, reduction=reduction)
                for name in self.intermediate_modules()]

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
        """Image (B, C, H, W) → tokens (B, 1 + N, D) with the CLS token first, and the patch grid."""
        tokens, grid = self.patch_embed(x)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1), grid

    def _loops(self, n_loops: int | None) -> int | None:
        return n_loops if n_loops is not None else self.n_loops

    def forward_features(self, x: torch.Tensor, n_loops: int | None = None) -> torch.Tensor:
        """Normalised tokens (B, 1 + N, D), CLS first."""
        tokens, grid = self.embed(x)
        tokens, aux = self.forward_blocks(tokens, self._loops(n_loops))
        self._pass = (aux, grid)
        return self.norm(tokens)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "token":
            x = x[:, 0]
        elif self.global_pool == "avg":
            x = x[:, 1:].mean(dim=1)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def last_aux(self) -> AuxOutputs | None:
        """The auxiliaries of the latest forward, per-token maps on the patch grid without the CLS token;
        ``None`` before the first eager forward and after an FX trace (whose values were symbolic)."""
        if self._pass is None or isinstance(self._pass[1], torch.fx.Proxy):
            return None
        aux, grid = self._pass
        return aux.on_grid(grid, prefix_tokens=1)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        n_loops: int | None = None,
        norm: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
        return_prefix_tokens: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[Any]]:
        """timm's ``forward_intermediates``: the final features and the states after chosen layers.

        The states are those of :meth:`intermediate_modules` — a layer each for the ViT and Raptor, a step
        (bViT), a loop (RD-ViT) or a layer of head + shared passes + tail (Edge-RecViT) — of *this* pass:
        with ``n_loops`` the recurrent models have that many steps, and ``indices`` (last n if an int, all if
        None, negatives from the end) count them. ``norm`` applies the final norm to each; ``output_fmt``
        "NCHW" gives (B, D, H', W') patch maps, "NLC" (B, N, D) patch tokens; ``return_prefix_tokens`` pairs
        each with its CLS token (B, 1, D).
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        n_loops = self._loops(n_loops)
        take = take_indices(len(self.intermediate_modules(n_loops)), indices)
        tokens, grid = self.embed(x)
        states: list[torch.Tensor] = []
        tokens, aux = self.forward_blocks(tokens, n_loops, states)
        self._pass = (aux, grid)
        chosen = [self.norm(states[i]) if norm else states[i] for i in take]
        patches = [state[:, 1:] for state in chosen]
        if output_fmt == "NCHW":
            patches = [p.transpose(1, 2).unflatten(2, grid).contiguous() for p in patches]
        intermediates = list(zip(patches, [state[:, :1] for state in chosen])) if return_prefix_tokens else patches
        if intermediates_only:
            return intermediates
        return self.norm(tokens), intermediates

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """What timm's ``features_only`` wrapper calls: drop the head (and the norm), keep every block —
        the recurrent models share theirs across depth. Returns the absolute indices."""
        take = take_indices(len(self.intermediate_modules()), indices)
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take


def fixed_depth(model: nn.Module, n_loops: int | None) -> None:
    """Raise for an ``n_loops`` given to a model whose depth is fixed."""
    if n_loops is not None:
        raise ValueError(f"n_loops only applies to recurrent models; {type(model).__name__} has a fixed depth")

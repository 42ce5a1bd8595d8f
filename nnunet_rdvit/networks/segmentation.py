"""Segmentation networks: RD-ViT (one shared block looped) and the ViT baseline (L unique blocks).

Both share the patch embedding, the final norm and the decoder, so a comparison isolates the
recurrence. Neither knows anything about training; both accept nnU-Net's constructor keywords
(``input_channels``, ``num_classes``, ``deep_supervision``) so a plans file can name them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.networks.block import TransformerBlock, make_feedforward, make_norm
from nnunet_rdvit.networks.conv_encoder import ConvEncoder, default_encoder_channels
from nnunet_rdvit.networks.decoders import build_decoder
from nnunet_rdvit.networks.moe import moe_layers
from nnunet_rdvit.networks.patch_embed import PatchEmbed, check_token_size
from nnunet_rdvit.networks.recurrent_core import RecurrentCore


def init_vit_weights(module: nn.Module) -> None:
    """ViT initialisation (timm): truncated-normal linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class TokenSegmentationNetwork(nn.Module):
    """(Conv encoder →) embedding → :meth:`forward_blocks` (defined by subclasses) → norm → decoder.

    ``forward(x, n_loops=None, return_aux=False, act=None)`` returns logits (B, classes, *spatial); with
    ``return_aux=True`` it returns ``(logits, AuxOutputs)``. ``n_loops`` and ``act`` (halting on/off for
    this call) apply to recurrent networks only. The auxiliaries of the latest call are also
    kept in ``last_aux``, because nnU-Net's training and prediction code only ever sees the logits.

    Args:
        input_channels: image channels (nnU-Net's keyword).
        num_classes: output channels, background included (nnU-Net's keyword).
        patch_size: the input patch the position embedding is built for; other sizes interpolate it.
        token_size: image voxels per token, per axis; must divide ``patch_size``.
        embed_dim: token width D.
        norm: "layernorm" or "rmsnorm", for every block and the final norm.
        decoder: "progressive" (transposed-conv stages reading the encoder's skips) or "light" (1×1 conv
            and interpolation, the paper's head).
        encoder_channels: the convolutional encoder (see :class:`ConvEncoder`). ``None``: the recipe's
            hybrid encoder, :func:`default_encoder_channels`; ``(8,)``: a full-resolution stem whose
            features only the progressive decoder reads (omitted with the light head, where nothing would
            read it); each further entry adds a ×2 downsampling stage, and the patch embedding then
            tokenises the last feature map (a hybrid embedding) with the remaining token size; ``()``: none.
        grad_checkpointing: recompute each block (loop) in the backward pass instead of storing its
            activations.
        deep_supervision: must be ``False`` (one output resolution); nnU-Net passes it.
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        patch_size: Sequence[int],
        token_size: Sequence[int],
        *,
        embed_dim: int,
        norm: str,
        decoder: str,
        encoder_channels: Sequence[int] | None,
        grad_checkpointing: bool,
        deep_supervision: bool,
    ):
        super().__init__()
        if deep_supervision:
            raise ValueError(
                f"{type(self).__name__} has a single output resolution and cannot do deep supervision; "
                "train it with the nnunet-rdvit trainers (which turn it off) or pass deep_supervision=False"
            )
        check_token_size(patch_size, token_size)
        self.num_classes = num_classes
        self.token_size = tuple(int(t) for t in token_size)
        self.grad_checkpointing = grad_checkpointing
        if encoder_channels is None:
            encoder_channels = default_encoder_channels(self.token_size)
        hybrid = len(encoder_channels) > 1
        self.encoder = (ConvEncoder(input_channels, token_size, encoder_channels)
                        if hybrid or (encoder_channels and decoder != "light") else None)
        scale = self.encoder.downsampling() if hybrid else (1,) * len(token_size)
        self.patch_embed = PatchEmbed(
            encoder_channels[-1] if hybrid else input_channels, embed_dim,
            [p // s for p, s in zip(patch_size, scale)], [t // s for t, s in zip(token_size, scale)],
        )
        self.norm = make_norm(norm, embed_dim)
        skips = self.encoder.channels if self.encoder is not None else ()
        self.decoder = build_decoder(decoder, embed_dim, num_classes, token_size, skips)
        self.last_aux: AuxOutputs | None = None

    moe_layers = moe_layers

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...], list[torch.Tensor]]:
        """Tokens (B, N, D) with their position embedding, the token grid, and the encoder's feature maps
        (full resolution first; empty without an encoder), which the decoder takes as skips."""
        check_token_size(tuple(x.shape[2:]), self.token_size)
        skips = self.encoder(x) if self.encoder is not None else []
        tokens, grid = self.patch_embed(skips[-1] if len(skips) > 1 else x)
        return tokens, grid, skips

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, act: bool | None
    ) -> tuple[torch.Tensor, AuxOutputs]:
        """Tokens (B, N, D) → tokens and auxiliaries (per-token maps as (B, N[, E])); the classifiers' step
        of the same name."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, n_loops: int | None = None, return_aux: bool = False, act: bool | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, AuxOutputs]:
        tokens, grid, skips = self.embed(x)
        tokens, aux = self.forward_blocks(tokens, n_loops, act)
        logits = self.decoder(self.norm(tokens), grid, skips)
        self.last_aux = aux = aux.on_grid(grid)
        return (logits, aux) if return_aux else logits


class RDViT(TokenSegmentationNetwork):
    """Recurrent-depth ViT: one shared block looped ``num_loops`` times (see :class:`RecurrentCore`).

    ``n_loops`` at call time may exceed ``num_loops`` (depth extrapolation).

    Args:
        input_channels, num_classes, patch_size, token_size, embed_dim, norm, decoder, encoder_channels,
            grad_checkpointing, deep_supervision: as for :class:`TokenSegmentationNetwork`.
        num_heads: attention heads of the shared block.
        num_loops: T, the loops the core is built and trained with.
        ffn: "swiglu" or "mlp", the shared block's feed-forward (and the prelude's).
        mlp_ratio: feed-forward hidden width over D.
        lora_rank, act, act_threshold, halting_bias_init, min_loops, lti, sparse_act: as for
            :class:`RecurrentCore`.
        halting_prior: as for :class:`RecurrentCore`; default 0.2, a prior of about five loops, which kept
            ACT from collapsing to one loop on real ACDC (docs/recipe.md). ``None``: plain ACT.
        moe_experts: > 0 makes the shared block's feed-forward a Mixture of that many SwiGLU experts.
        moe_top_k: experts per token.
        moe_shared_expert: add an always-on shared expert.
        moe_bias_update_rate: step of the auxiliary-loss-free balancing bias (0: off).
        prelude_depth: unshared blocks before the loop.
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        patch_size: Sequence[int],
        token_size: Sequence[int],
        *,
        embed_dim: int = 192,
        num_heads: int = 3,
        num_loops: int = 6,
        ffn: str = "swiglu",
        mlp_ratio: float = 4.0,
        lora_rank: int = 8,
        act: bool = True,
        act_threshold: float = 0.99,
        halting_bias_init: float = 0.0,
        min_loops: int = 1,
        lti: bool = True,
        sparse_act: bool | None = None,
        halting_prior: float | None = 0.2,
        moe_experts: int = 0,
        moe_top_k: int = 2,
        moe_shared_expert: bool = False,
        moe_bias_update_rate: float = 0.0,
        prelude_depth: int = 0,
        norm: str = "layernorm",
        decoder: str = "progressive",
        encoder_channels: Sequence[int] | None = None,
        grad_checkpointing: bool = False,
        deep_supervision: bool = False,
    ):
        super().__init__(input_channels, num_classes, patch_size, token_size, embed_dim=embed_dim, norm=norm,
                         decoder=decoder, encoder_channels=encoder_channels, grad_checkpointing=grad_checkpointing,
                         deep_supervision=deep_supervision)
        self.prelude = nn.ModuleList(
            TransformerBlock(embed_dim, num_heads, make_feedforward(ffn, embed_dim, mlp_ratio), norm)
            for _ in range(prelude_depth)
        )
        feedforward = make_feedforward(ffn, embed_dim, mlp_ratio, moe_experts=moe_experts, moe_top_k=moe_top_k,
                                       moe_shared_expert=moe_shared_expert,
                                       moe_bias_update_rate=moe_bias_update_rate)
        self.core = RecurrentCore(
            TransformerBlock(embed_dim, num_heads, feedforward, norm), embed_dim, num_loops=num_loops,
            lora_rank=lora_rank, act=act, act_threshold=act_threshold, halting_bias_init=halting_bias_init,
            min_loops=min_loops, lti=lti, norm=norm, grad_checkpointing=grad_checkpointing,
            sparse_act=sparse_act, halting_prior=halting_prior,
        )
        self.apply(init_vit_weights)
        self.core.reset_adaptive_parameters()  # halting bias and zero LoRA `up`, overwritten above

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, act: bool | None
    ) -> tuple[torch.Tensor, AuxOutputs]:
        for block in self.prelude:
            tokens, _ = block(tokens)
        return self.core(tokens, n_loops, act)


class ViT(TokenSegmentationNetwork):
    """ViT baseline: ``depth`` unique pre-norm blocks on the same embedding and decoder as RD-ViT.

    Args:
        input_channels, num_classes, patch_size, token_size, embed_dim, norm, decoder, encoder_channels,
            grad_checkpointing, deep_supervision: as for :class:`TokenSegmentationNetwork`.
        depth: number of blocks.
        num_heads: attention heads per block.
        ffn: "mlp" (timm's ViT) or "swiglu".
        mlp_ratio: feed-forward hidden width over D.
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        patch_size: Sequence[int],
        token_size: Sequence[int],
        *,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        ffn: str = "mlp",
        mlp_ratio: float = 4.0,
        norm: str = "layernorm",
        decoder: str = "progressive",
        encoder_channels: Sequence[int] | None = None,
        grad_checkpointing: bool = False,
        deep_supervision: bool = False,
    ):
        super().__init__(input_channels, num_classes, patch_size, token_size, embed_dim=embed_dim, norm=norm,
                         decoder=decoder, encoder_channels=encoder_channels, grad_checkpointing=grad_checkpointing,
                         deep_supervision=deep_supervision)
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim, num_heads, make_feedforward(ffn, embed_dim, mlp_ratio), norm)
            for _ in range(depth)
        )
        self.apply(init_vit_weights)

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, act: bool | None
    ) -> tuple[torch.Tensor, AuxOutputs]:
        if n_loops is not None or act is not None:
            raise ValueError("n_loops and act only apply to recurrent networks; the ViT baseline has a fixed depth")
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                tokens, _ = checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens, _ = block(tokens)
        return tokens, AuxOutputs()

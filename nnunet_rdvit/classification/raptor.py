"""Raptor-style distillation (Jacobs et al., arXiv:2512.19941): rewrite a trained ViT's L blocks as
k ≪ L shared blocks applied recurrently, each covering a contiguous range ("phase") of teacher layers.

In distillation the student keeps the teacher's patch embedding, CLS token, final norm and head
(copied and frozen) and learns only the k blocks, by regressing the teacher's token activations after
every layer (mean over layers of the per-layer MSE). Teacher forcing — feeding layer ℓ the teacher's state ℓ−1
instead of the student's own — is used with probability 1 at the start and annealed linearly to 0
(pure autoregressive roll-out) over the first quarter of training, per sample.

Reconstruction choices: phases are equal by default or found from the teacher's layer-layer
similarity (:func:`find_phases`, contiguous kernel k-means); each student block starts from the
teacher block in the middle of its phase.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_rdvit.classification.base import TokenClassifier, fixed_depth
from nnunet_rdvit.classification.vit import VisionTransformer
from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.unwrap import unwrap_network


def equal_phases(depth: int, num_blocks: int) -> list[int]:
    """Phase lengths splitting ``depth`` layers into ``num_blocks`` contiguous, near-equal ranges."""
    if not 1 <= num_blocks <= depth:
        raise ValueError(f"the number of blocks must be between 1 and the teacher depth {depth}, got {num_blocks}")
    return [depth // num_blocks + (i < depth % num_blocks) for i in range(num_blocks)]


def layer_similarity(states: Sequence[torch.Tensor]) -> torch.Tensor:
    """(L, L) mean cosine similarity between the token activations of every pair of layers."""
    unit = torch.stack([F.normalize(s.float().flatten(0, 1), dim=-1) for s in states])  # (L, T, D)
    return torch.einsum("itd,jtd->ij", unit, unit) / unit.shape[1]


def find_phases(similarity: torch.Tensor, num_blocks: int) -> list[int]:
    """Contiguous phases minimising the within-phase scatter Σ_phase (Σ_i K_ii − Σ_ij K_ij / n)
    in the kernel K = ``similarity`` (k-means on the layers, restricted to contiguous ranges), by
    dynamic programming. Returns the phase lengths."""
    depth = similarity.shape[0]
    equal_phases(depth, num_blocks)  # validates num_blocks
    k = similarity.double()
    prefix = k.cumsum(0).cumsum(1)
    prefix = F.pad(prefix, (1, 0, 1, 0))
    diagonal = F.pad(k.diagonal().cumsum(0), (1, 0))

    def scatter(a: int, b: int) -> float:  # layers a..b-1
        block_sum = prefix[b, b] - prefix[a, b] - prefix[b, a] + prefix[a, a]
        return float(diagonal[b] - diagonal[a] - block_sum / (b - a))

    inf = float("inf")
    cost = [[inf] * (depth + 1) for _ in range(num_blocks + 1)]
    split = [[0] * (depth + 1) for _ in range(num_blocks + 1)]
    cost[0][0] = 0.0
    for j in range(1, num_blocks + 1):
        for b in range(j, depth + 1):
            for a in range(j - 1, b):
                candidate = cost[j - 1][a] + scatter(a, b)
                if candidate < cost[j][b]:
                    cost[j][b], split[j][b] = candidate, a
    lengths, end = [], depth
    for j in range(num_blocks, 0, -1):
        lengths.append(end - split[j][end])
        end = split[j][end]
    return lengths[::-1]


def teacher_forcing_probability(progress: float, anneal_fraction: float = 0.25) -> float:
    """1 at the start of training, linearly down to 0 at ``anneal_fraction`` of it, then 0."""
    if anneal_fraction <= 0:
        return 0.0
    return max(0.0, 1.0 - progress / anneal_fraction)


@dataclass
class RaptorAux(AuxOutputs):
    layer_states: list[torch.Tensor] = field(default_factory=list)  # the student's state after every layer


class RaptorViT(TokenClassifier):
    """k shared blocks; block j is applied ``phases[j]`` times in a row, Σ phases = teacher depth.

    Built like any timm model: every parameter trains (fine-tuning, a new ``num_classes``). Distillation
    (:class:`RaptorDistillation`, ``classify distill``) starts it from a teacher (:meth:`init_from_teacher`)
    and learns only the blocks (:meth:`freeze_teacher_parts`). ``depth`` is the teacher's; ``kwargs``: the
    shared arguments of :class:`TokenClassifier`, the teacher's geometry.
    """

    def __init__(self, depth: int = 12, num_blocks: int = 2, phases: Sequence[int] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.phases = list(phases) if phases is not None else equal_phases(depth, num_blocks)
        if sum(self.phases) != depth or min(self.phases) < 1:
            raise ValueError(f"phases {self.phases} must be positive and sum to the teacher depth {depth}")
        self.blocks = nn.ModuleList(self.new_block() for _ in self.phases)
        self.init_weights()
        self._forcing: tuple[Sequence[torch.Tensor], torch.Tensor] | None = None

    def layer_blocks(self) -> list[int]:
        """The index of the block that stands in for each teacher layer, in order."""
        return [j for j, length in enumerate(self.phases) for _ in range(length)]

    @contextmanager
    def teacher_forcing(self, teacher_states: Sequence[torch.Tensor], forced: torch.Tensor) -> Iterator[None]:
        """Within the block, forward passes feed the samples where ``forced`` (B,) is True the teacher's
        state ℓ−1 (``teacher_states``, its trajectory) at each layer ℓ, instead of their own. A context
        rather than forward arguments, so that training calls ``forward(x)`` (through DDP) like any model."""
        self._forcing = (teacher_states, forced)
        try:
            yield
        finally:
            self._forcing = None

    def forward_blocks(
        self, tokens: torch.Tensor, n_loops: int | None, states: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, RaptorAux]:
        fixed_depth(self, n_loops)
        aux = RaptorAux()
        for layer, j in enumerate(self.layer_blocks()):
            if self._forcing is not None:
                teacher_states, forced = self._forcing
                tokens = torch.where(forced[:, None, None], teacher_states[layer].to(tokens), tokens)
            tokens, _ = self.run_block(self.blocks[j], tokens)
            aux.layer_states.append(tokens)
        if states is not None:
            states.extend(aux.layer_states)
        return tokens, aux

    def intermediate_modules(self, n_loops: int | None = None) -> list[str]:
        """One per teacher layer: the block standing in for it."""
        fixed_depth(self, n_loops)
        return [f"blocks.{j}" for j in self.layer_blocks()]

    def block_groups(self) -> list[tuple[str, tuple[int, ...] | None]]:
        return [(r"^blocks\.(\d+)", None)]

    def init_from_teacher(self, teacher: VisionTransformer) -> None:
        """Copy the teacher's embedding, CLS token, final norm and head; start block j from the teacher
        block in the middle of phase j. The teacher must have this student's geometry."""
        outer = {k: v for k, v in teacher.state_dict().items() if not k.startswith("blocks.")}
        unexpected = self.load_state_dict(outer, strict=False).unexpected_keys
        if unexpected:
            raise ValueError(f"the teacher has parameters a Raptor student does not: {unexpected}")
        start = 0
        for block, length in zip(self.blocks, self.phases):
            block.load_state_dict(teacher.blocks[start + length // 2].state_dict())
            start += length

    def freeze_teacher_parts(self) -> None:
        """Raptor's recipe: the embedding, CLS token, final norm and head stay the teacher's; only the
        blocks learn."""
        for part in (self.patch_embed, self.cls_token, self.norm, self.head):
            part.requires_grad_(False)


class RaptorDistillation:
    """Objective: mean over layers of MSE(student state ℓ, teacher state ℓ), with annealed teacher forcing."""

    def __init__(self, teacher: VisionTransformer, anneal_fraction: float = 0.25):
        self.teacher = teacher.eval().requires_grad_(False)
        self.anneal_fraction = anneal_fraction

    def __call__(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, progress: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.teacher.to(images.device)
        with torch.no_grad():
            states = self.teacher.trajectory(self.teacher.embed(images)[0])
        probability = teacher_forcing_probability(progress, self.anneal_fraction)
        forced = torch.rand(images.shape[0], device=images.device) < probability
        student = unwrap_network(model)
        with student.teacher_forcing(states, forced):
            model(images)
        losses = [F.mse_loss(s.float(), t.float()) for s, t in zip(student.last_aux.layer_states, states[1:])]
        loss = torch.stack(losses).mean()
        return loss, {"distill_mse": loss.detach(), "last_layer_mse": losses[-1].detach(),
                      "teacher_forcing": torch.tensor(probability)}


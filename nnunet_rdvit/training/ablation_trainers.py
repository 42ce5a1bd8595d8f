"""Ablation trainers: the full RD-ViT (``RDViTTrainer``) with one component removed or changed.

Each is a small subclass usable wherever ``RDViTTrainer`` is — ``nnUNetv2_train 027 2d 0 -tr RDViTTrainer_NoACT``,
the data-fraction names (``RDViTTrainer_NoACT_frac100``) and ``nnunet-rdvit experiment run --ablation`` — because
it is registered with ``@register_trainer(ablation=True)`` and named in
:data:`~nnunet_rdvit.ablation_names.ABLATIONS` (:mod:`nnunet_rdvit.training.registry`).
Everything else (width, heads, optimiser, schedule, losses, budget) is the full model's, so a difference in
the ablation table is the component's. What each one changes: :data:`nnunet_rdvit.ablation_names.ABLATIONS`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from nnunet_rdvit.training.loop_sampling import LoopCountDistribution
from nnunet_rdvit.training.registry import ablation_classes, register_trainer
from nnunet_rdvit.training.trainers import AUX_LOG_KEYS, RDViTTrainer


@register_trainer(ablation=True)
class RDViTTrainer_NoACT(RDViTTrainer):
    """Fixed depth: every token runs all T loops and the output is the last state; no halting unit, no ponder loss."""

    network_kwargs = {**RDViTTrainer.network_kwargs, "act": False}


@register_trainer(ablation=True)
class RDViTTrainer_NoLoRA(RDViTTrainer):
    """No depth-wise LoRA: every loop applies exactly the same block (loops differ only by the loop embedding)."""

    network_kwargs = {**RDViTTrainer.network_kwargs, "lora_rank": 0}


@register_trainer(ablation=True)
class RDViTTrainer_NoLTI(RDViTTrainer):
    """No LTI-stable injection: the state is the block output, h ← u (e still enters through the block's input)."""

    network_kwargs = {**RDViTTrainer.network_kwargs, "lti": False}


@register_trainer(ablation=True)
class RDViTTrainer_SingleLoop(RDViTTrainer):
    """The shared block applied once (T = 1). Without ACT: after one loop there is nothing to decide — every
    token halts with weight 1, the halting unit's gradient is always zero and the ponder loss a constant."""

    network_kwargs = {**RDViTTrainer.network_kwargs, "num_loops": 1, "act": False}


@register_trainer(ablation=True)
class RDViTTrainer_RandomLoops(RDViTTrainer):
    """The loop count of every training step drawn at random (:mod:`~nnunet_rdvit.training.loop_sampling`).

    With ACT the drawn count is the step's maximum; tokens may halt earlier. nnU-Net's validation, its final
    validation and the predictor call the network without arguments and so run the trained T. The mean drawn
    count per epoch is logged as ``sampled_loops``.
    """

    loop_count_seed: ClassVar[int] = 0  # with (epoch, iteration) the key of each draw: the same on every DDP rank
    max_loops_factor: ClassVar[int] = 2
    loop_count_sigma: ClassVar[float] = 0.5
    aux_log_keys = (*AUX_LOG_KEYS, "sampled_loops")

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.iteration_in_epoch = 0

    def loop_count_distribution(self) -> LoopCountDistribution:
        core = self.unwrapped_network.core
        return LoopCountDistribution.around(core.num_loops, core.min_loops, self.max_loops_factor,
                                            self.loop_count_sigma)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.iteration_in_epoch = 0

    def train_step(self, batch: dict) -> dict:
        loops = self.loop_count_distribution().sample(self.loop_count_seed, self.current_epoch,
                                                      self.iteration_in_epoch)
        self.iteration_in_epoch += 1
        with loop_count_override(self.unwrapped_network, loops):
            result = super().train_step(batch)
        result["sampled_loops"] = np.asarray(float(loops))
        return result


@contextmanager
def loop_count_override(network: nn.Module, n_loops: int) -> Iterator[None]:
    """Inside the block, every call of ``network`` runs ``n_loops`` loops: nnU-Net's ``train_step`` calls the
    network without arguments, so the count is added as a keyword by a forward pre-hook (removed on exit)."""
    handle = network.register_forward_pre_hook(lambda module, args, kwargs: (args, {**kwargs, "n_loops": n_loops}),
                                               with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


ABLATION_TRAINERS: dict[str, type[RDViTTrainer]] = ablation_classes()  # checks ABLATIONS against the registry

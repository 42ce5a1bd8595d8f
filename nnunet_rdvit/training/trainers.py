"""nnU-Net trainers for RD-ViT, RD-ViT+MoE and the ViT baseline.

Each trainer is a small override of nnUNetTrainer: the network comes from ``network_class`` and
``network_kwargs``; AdamW with warm-up, polynomial decay and clipping at 1 replaces SGD; deep
supervision is off; the ponder, halting-prior, balance and z-losses are added to nnU-Net's Dice+CE; ACT and MoE
statistics are logged per epoch and drawn in ``aux_progress.png`` beside nnU-Net's ``progress.png``;
checkpoints are written atomically (:mod:`nnunet_rdvit.training.checkpoints`); ``budget`` shortens the training
(:class:`~nnunet_rdvit.training.time_budget.BudgetedTraining`). Subclass one of these (keeping the ``__init__``
signature) to change any of it.
"""

from __future__ import annotations

import inspect
from os.path import join
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_rdvit.fraction_trainer_names import TrainingBudget
from nnunet_rdvit.networks import RDViT, TokenSegmentationNetwork, ViT
from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.training.aux_loss import AuxiliaryLoss
from nnunet_rdvit.training.checkpoints import CrashSafeCheckpoints
from nnunet_rdvit.training.optim import ClippedAdamW, WarmupPolyLR, decay_parameter_groups
from nnunet_rdvit.training.progress_plot import plot_aux_progress
from nnunet_rdvit.training.registry import register_trainer
from nnunet_rdvit.training.time_budget import BudgetedTraining
from nnunet_rdvit.training.token_grid import TOKEN_SIZE_KEY, default_token_size, fit_plans_to_tokens
from nnunet_rdvit.training.trainer_errors import TrainerSetupError, require_configuration
from nnunet_rdvit.unwrap import unwrap_network

AUX_LOG_KEYS = ("ponder_time", "ponder_loss", "halting_prior_loss", "balance_loss", "z_loss", "expert_load")
# Arguments the trainer sets itself; they cannot come from ``network_kwargs``.
_TRAINER_SET_ARGS = {"input_channels", "num_classes", "patch_size", "token_size", "deep_supervision"}

register_trainer(fraction_variants=True, lookup=False)(nnUNetTrainer)  # nnU-Net's U-Net: the low-data reference


def aux_metrics(aux: AuxOutputs | None) -> dict[str, Any]:
    """Scalars (and the expert-load vector) of one forward pass, as numpy values for nnU-Net's logs."""
    if aux is None:
        return {}
    values = {
        "ponder_time": aux.ponder_time if aux.ponder_loss is not None else None,
        "ponder_loss": aux.ponder_loss,
        "halting_prior_loss": aux.halting_prior_loss,
        "balance_loss": aux.balance_loss,
        "z_loss": aux.z_loss,
        "expert_load": aux.expert_load,
    }
    return {k: v.detach().float().cpu().numpy() for k, v in values.items() if v is not None}


class TransformerTrainer(BudgetedTraining, CrashSafeCheckpoints, nnUNetTrainer):
    """Shared nnU-Net glue for token-based segmentation networks; subclasses set ``network_class``."""

    network_class: ClassVar[type[TokenSegmentationNetwork]]
    network_kwargs: ClassVar[dict[str, Any]] = {}
    token_size: ClassVar[tuple[int, ...] | None] = None  # None: see token_grid.default_token_size
    ponder_weight: ClassVar[float] = 0.01
    balance_weight: ClassVar[float] = 0.01
    z_loss_weight: ClassVar[float] = 0.001
    halting_prior_weight: ClassVar[float] = 0.01
    warmup_fraction: ClassVar[float] = 0.05  # of num_epochs, at least one epoch
    max_grad_norm: ClassVar[float] = 1.0
    aux_log_keys: ClassVar[tuple[str, ...]] = AUX_LOG_KEYS  # train_step outputs averaged and logged per epoch

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        require_configuration(plans, configuration)
        try:
            tokens = fit_plans_to_tokens(plans, configuration, self.token_size)
        except ValueError as error:
            raise TrainerSetupError(f"{type(self).__name__} cannot train configuration {configuration!r}: {error}") \
                from None
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 1e-3  # 3e-4 learned ~5 Dice points less at 600 steps on ACDC (docs/recipe.md)
        self.weight_decay = 5e-2
        self.enable_deep_supervision = False
        self.print_to_log_file(f"{type(self).__name__}: token size {tokens}, patch size "
                               f"{self.configuration_manager.patch_size}", also_print_to_console=False)

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        """Called on the class by nnU-Net's predictor too, so everything comes from the plans and the class."""
        patch_size = configuration_manager.patch_size
        token_size = configuration_manager.configuration.get(TOKEN_SIZE_KEY) or default_token_size(patch_size)
        return cls.network_class(
            input_channels=num_input_channels,
            num_classes=num_output_channels,
            patch_size=patch_size,
            token_size=token_size,
            deep_supervision=enable_deep_supervision,
            **cls.checked_network_kwargs(),
        )

    @classmethod
    def checked_network_kwargs(cls) -> dict[str, Any]:
        accepted = set(inspect.signature(cls.network_class).parameters) - _TRAINER_SET_ARGS
        unknown = sorted(set(cls.network_kwargs) - accepted)
        if unknown:
            raise ValueError(f"{cls.__name__}.network_kwargs has unknown option(s) {unknown} for "
                             f"{cls.network_class.__name__}; valid options are {sorted(accepted)}")
        return dict(cls.network_kwargs)

    def _do_i_compile(self) -> bool:
        return False  # ACT's data-dependent loop exit defeats torch.compile's graph capture

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        pass  # single-resolution decoder: nothing to switch

    def configure_optimizers(self):
        optimizer = ClippedAdamW(decay_parameter_groups(self.network, self.weight_decay),
                                 max_grad_norm=self.max_grad_norm, lr=self.initial_lr, betas=(0.9, 0.98))
        warmup = max(1, round(self.warmup_fraction * self.num_epochs))
        return optimizer, WarmupPolyLR(optimizer, self.initial_lr, self.num_epochs, warmup)

    def _build_loss(self):
        network = self.unwrapped_network
        return AuxiliaryLoss(super()._build_loss(), lambda: network.last_aux,
                             self.ponder_weight, self.balance_weight, self.z_loss_weight, self.halting_prior_weight)

    @property
    def unwrapped_network(self) -> TokenSegmentationNetwork:
        return unwrap_network(self.network)

    def train_step(self, batch: dict) -> dict:
        result = super().train_step(batch)
        network = self.unwrapped_network
        for moe in network.moe_layers():
            moe.update_selection_bias()
        result.update(aux_metrics(network.last_aux))
        return result

    def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
        super().on_train_epoch_end(train_outputs)
        logged = self.logger.local_logger.my_fantastic_logging
        for key in self.aux_log_keys:
            values = [output[key] for output in train_outputs if key in output]
            if not values:
                continue
            mean = np.mean(np.stack(values), axis=0)
            if self.is_ddp:
                gathered = [None] * dist.get_world_size()
                dist.all_gather_object(gathered, mean)
                mean = np.mean(np.stack(gathered), axis=0)
            logged.setdefault(key, [])
            self.logger.log(key, mean.tolist() if mean.ndim else float(mean), self.current_epoch)
            shown = np.round(mean, 3).tolist()
            self.print_to_log_file(f"{key}: {shown}")

    def on_epoch_end(self) -> None:
        super().on_epoch_end()
        if self.local_rank == 0:
            plot_aux_progress(self.logger.local_logger.my_fantastic_logging,
                              join(self.output_folder, "aux_progress.png"))


@register_trainer(fraction_variants=True)
class RDViTTrainer(TransformerTrainer):
    """RD-ViT: one shared block looped (T = 6) with LTI injection, depth-wise LoRA and ACT."""

    network_class = RDViT


@register_trainer(fraction_variants=True)
class RDViTTrainer_MoE(RDViTTrainer):
    """RD-ViT whose shared block has a 6-expert top-2 Mixture-of-Experts feed-forward.

    Six experts put the ACDC 3d_fullres network at 3.99 M parameters, 54 % of the ViT's 7.41 M (the paper:
    3.0 M, 53 %); eight would be 4.58 M (62 %).
    """

    network_kwargs = {"moe_experts": 6, "moe_top_k": 2}


@register_trainer(fraction_variants=True)
class ViTTrainer(TransformerTrainer):
    """ViT baseline: 12 unique blocks, same embedding and decoder as RD-ViT."""

    network_class = ViT


@register_trainer()
class RDViTTrainer_demo(RDViTTrainer):
    """RD-ViT on the short budget of ``nnunet-rdvit demo`` (10 epochs × 25 iterations, 5 validation iterations):
    a pipeline check."""

    budget = TrainingBudget(10, 25)

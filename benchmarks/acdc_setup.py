"""What the benchmarks compare: nnU-Net's ACDC plans, the networks each trainer builds, the halting setup.

Every network is built the way nnU-Net builds it for training and prediction, by the trainer's static
``build_network_architecture`` on the same plans, so the U-Net is exactly nnU-Net's default for ACDC.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_rdvit.acdc_labels import LABELS, NUM_CLASSES
from nnunet_rdvit.networks import RDViT
from nnunet_rdvit.training.token_grid import fit_plans_to_tokens
from nnunet_rdvit.training.trainers import RDViTTrainer, RDViTTrainer_MoE, ViTTrainer

CONFIGURATIONS = ("2d", "3d_fullres")


def _unet(conv: str, features: list[int], kernels: list[list[int]], strides: list[list[int]]) -> dict:
    dim = conv[-2:]
    return {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": len(features), "features_per_stage": features, "conv_op": f"torch.nn.modules.conv.Conv{dim}",
            "kernel_sizes": kernels, "strides": strides, "n_conv_per_stage": [2] * len(features),
            "n_conv_per_stage_decoder": [2] * (len(features) - 1), "conv_bias": True,
            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def _configuration(patch: list[int], spacing: list[float], batch: int, median: list[float], unet: dict) -> dict:
    return {"data_identifier": "bench", "preprocessor_name": "DefaultPreprocessor", "batch_size": batch,
            "patch_size": patch, "median_image_size_in_voxels": median, "spacing": spacing,
            "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
            "architecture": unet, "batch_dice": len(patch) == 2}


# The plans nnU-Net 2.8.1 (ExperimentPlanner) writes for the 100 ACDC training patients (200 volumes):
# `nnUNetv2_extract_fingerprint -d 27 && nnUNetv2_plan_experiment -d 27`, values copied verbatim.
ACDC_PLANS = {
    "dataset_name": "Dataset027_ACDC", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
    "original_median_spacing_after_transp": [10.0, 1.5625, 1.5625],
    "original_median_shape_after_transp": [9, 256, 216],
    "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
    "configurations": {
        "2d": _configuration([256, 224], [1.5625, 1.5625], 56, [237.0, 208.0], _unet(
            "Conv2d", [32, 64, 128, 256, 512, 512], [[3, 3]] * 6, [[1, 1]] + [[2, 2]] * 5)),
        "3d_fullres": _configuration([20, 256, 224], [5.0, 1.5625, 1.5625], 4, [18.0, 237.0, 208.0], _unet(
            "Conv3d", [32, 64, 128, 256, 320, 320], [[1, 3, 3]] + [[3, 3, 3]] * 5,
            [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2]])),
    },
}

# A miniature of the same plans for smoke tests (--quick): same architectures, tiny patches and volumes.
QUICK_PLANS = copy.deepcopy(ACDC_PLANS)
# (The U-Net needs more than one voxel at its bottleneck: 32 × 32 in-plane and 4 through-plane strides.)
QUICK_PLANS["configurations"]["2d"].update(patch_size=[64, 32], median_image_size_in_voxels=[60.0, 28.0])
QUICK_PLANS["configurations"]["3d_fullres"].update(patch_size=[4, 64, 32], median_image_size_in_voxels=[4.0, 60.0, 28.0])
QUICK_PLANS["original_median_shape_after_transp"] = [2, 60, 28]

DATASET_JSON = {"channel_names": {"0": "cineMRI"}, "labels": dict(LABELS),
                "numTraining": 200, "file_ending": ".nii.gz"}

# name → the trainer whose network it is; "sparse"/"dense" pin RD-ViT's ACT execution (None: automatic).
MODELS: dict[str, tuple[type[nnUNetTrainer], bool | None]] = {
    "U-Net": (nnUNetTrainer, None),
    "ViT": (ViTTrainer, None),
    "RD-ViT dense": (RDViTTrainer, False),
    "RD-ViT sparse": (RDViTTrainer, True),
    "RD-ViT+MoE": (RDViTTrainer_MoE, None),
}


@dataclass
class Setup:
    """One nnU-Net configuration as the benchmarks use it."""

    name: str
    plans_manager: PlansManager
    configuration: ConfigurationManager
    train_batch: int  # smaller than the plans' batch on this CPU; stated in every table

    @property
    def patch_size(self) -> tuple[int, ...]:
        return tuple(self.configuration.patch_size)

    @property
    def volume_shape(self) -> tuple[int, ...]:
        """An ACDC-sized preprocessed volume (C, Z, Y, X): the plans' median size (2d keeps the slices)."""
        median = [int(round(v)) for v in self.configuration.median_image_size_in_voxels]
        if len(median) == 2:
            median = [int(self.plans_manager.plans["original_median_shape_after_transp"][0]), *median]
        return (1, *median)

    def build(self, model: str) -> nn.Module:
        trainer, sparse_act = MODELS[model]
        network = trainer.build_network_architecture(self.plans_manager, self.configuration, 1, NUM_CLASSES, False)
        if isinstance(network, RDViT):
            network.core.sparse_act = sparse_act
        return network


def load_setups(plans_file: Path | None = None, quick: bool = False) -> list[Setup]:
    """The 2d and 3d_fullres setups, from a real ``nnUNetPlans.json`` if given, else from ACDC_PLANS."""
    plans = json.loads(plans_file.read_text()) if plans_file else copy.deepcopy(QUICK_PLANS if quick else ACDC_PLANS)
    setups = []
    for name in CONFIGURATIONS:
        fit_plans_to_tokens(plans, name, None)  # what the RD-ViT trainers do; ACDC's patches already fit
        manager = PlansManager(plans)
        batch = 2 if quick else (8 if name == "2d" else 2)
        setups.append(Setup(name, manager, manager.get_configuration(name), batch))
    return setups


@torch.no_grad()
def stagger_halting(model: RDViT, image: torch.Tensor, ponder_time: float = 2.5, spread: float = 1.5,
                    seed: int = 0) -> tuple[float, int]:
    """Give an untrained RD-ViT halting that differs per token, with a chosen mean ponder time.

    At initialisation every token has the same halting probability, so all halt at the same loop and
    sparse execution has nothing to skip. Here the halting weight becomes a random direction (``seed``)
    scaled so that the halting logits of the embedded tokens of ``image`` have standard deviation
    ``spread``, and the halting bias is bisected until the mean ponder time on ``image`` is
    ``ponder_time``. Returns the ponder time reached and the loops executed.
    """
    core = model.core
    tokens = model.embed(image)[0]
    direction = torch.randn(core.dim, generator=torch.Generator().manual_seed(seed))
    core.halting.weight.copy_((direction / (tokens @ direction).std() * spread).view_as(core.halting.weight))
    low, high = -10.0, 10.0
    for _ in range(10):  # to within 0.02 in the bias
        core.halting.bias.fill_((low + high) / 2)
        _, aux = core(tokens)
        if aux.ponder_time.item() > ponder_time:
            low = core.halting.bias.item()
        else:
            high = core.halting.bias.item()
    return aux.ponder_time.item(), aux.loops_executed


@torch.no_grad()
def run_all_loops(model: RDViT) -> None:
    """Halting so unlikely that every token runs every loop: the cost of T executed loops."""
    model.core.halting.weight.zero_()
    model.core.halting.bias.fill_(-30.0)

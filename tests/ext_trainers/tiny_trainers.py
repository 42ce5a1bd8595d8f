"""A user's own trainers, as they would put them in an ``nnUNet_extTrainer`` folder.

They subclass the installed nnunet-rdvit trainers with a tiny budget and a narrow network so the
stock nnU-Net commands can be exercised end to end in seconds.
"""

import torch

from nnunet_rdvit.training import RDViTTrainer, RDViTTrainer_MoE, ViTTrainer

TINY_NETWORK = {"embed_dim": 48, "num_heads": 2}


class TinyBudget:
    """Two epochs of three iterations; keeps nnU-Net's required ``__init__`` signature."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 3
        self.num_val_iterations_per_epoch = 2


class RDViTTrainer_tiny(TinyBudget, RDViTTrainer):
    network_kwargs = {**TINY_NETWORK, "num_loops": 3}


class RDViTTrainer_MoE_tiny(TinyBudget, RDViTTrainer_MoE):
    network_kwargs = {**RDViTTrainer_MoE.network_kwargs, **TINY_NETWORK, "num_loops": 3, "moe_experts": 4}


class ViTTrainer_tiny(TinyBudget, ViTTrainer):
    network_kwargs = {**TINY_NETWORK, "depth": 3}

"""A user's own trainers, as they would put them in an ``nnUNet_extTrainer`` folder.

They subclass the installed nnunet-rdvit trainers with a tiny budget and a narrow network so the
stock nnU-Net commands can be exercised end to end in seconds.
"""

from nnunet_rdvit.fraction_trainer_names import TrainingBudget
from nnunet_rdvit.training import RDViTTrainer, RDViTTrainer_MoE, ViTTrainer

TINY_BUDGET = TrainingBudget(2, 3)  # two epochs of three iterations (and one validation iteration)
TINY_NETWORK = {"embed_dim": 48, "num_heads": 2}


class RDViTTrainer_tiny(RDViTTrainer):
    budget = TINY_BUDGET
    network_kwargs = {**TINY_NETWORK, "num_loops": 3}


class RDViTTrainer_MoE_tiny(RDViTTrainer_MoE):
    budget = TINY_BUDGET
    network_kwargs = {**RDViTTrainer_MoE.network_kwargs, **TINY_NETWORK, "num_loops": 3, "moe_experts": 4}


class ViTTrainer_tiny(ViTTrainer):
    budget = TINY_BUDGET
    network_kwargs = {**TINY_NETWORK, "depth": 3}

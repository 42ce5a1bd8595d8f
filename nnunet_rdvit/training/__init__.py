"""nnU-Net glue for the transformer networks: trainers, losses, optimiser and schedules, logging.

User subclasses import the trainers from here, whichever way the package was installed::

    from nnunet_rdvit.training import RDViTTrainer
"""

from nnunet_rdvit.training.ablation_trainers import (
    RDViTTrainer_NoACT,
    RDViTTrainer_NoLoRA,
    RDViTTrainer_NoLTI,
    RDViTTrainer_RandomLoops,
    RDViTTrainer_SingleLoop,
)
from nnunet_rdvit.training.trainers import (
    RDViTTrainer,
    RDViTTrainer_demo,
    RDViTTrainer_MoE,
    TransformerTrainer,
    ViTTrainer,
)

__all__ = ["RDViTTrainer", "RDViTTrainer_MoE", "RDViTTrainer_NoACT", "RDViTTrainer_NoLTI", "RDViTTrainer_NoLoRA",
           "RDViTTrainer_RandomLoops", "RDViTTrainer_SingleLoop", "RDViTTrainer_demo", "TransformerTrainer",
           "ViTTrainer"]

"""nnU-Net glue for the transformer networks: trainers, losses, optimiser and schedules, logging.

User subclasses import the trainers from here, whichever way the package was installed::

    from nnunet_rdvit.training import RDViTTrainer

Every trainer registered with :func:`~nnunet_rdvit.training.registry.register_trainer` is exported here; a trainer
in a new module only needs that module imported below.
"""

from nnunet_rdvit.training import ablation_trainers, trainers  # noqa: F401 - defining the trainers registers them
from nnunet_rdvit.training.registry import lookup_trainers
from nnunet_rdvit.training.trainers import TransformerTrainer

globals().update(lookup_trainers())
__all__ = ["TransformerTrainer", *lookup_trainers()]

"""Data-fraction trainers for ``nnUNetv2_train ... -tr RDViTTrainer_frac10`` (and ``..._ep5_it20_bs8`` or
``..._min30`` budgets).

``RDViTTrainer_frac{10,25,50,100}``, ``RDViTTrainer_MoE_frac…``, ``ViTTrainer_frac…`` and ``nnUNetTrainer_frac…``
are attributes of this module; any other valid name (another percentage, a budget suffix) is created when
nnU-Net's lookup asks for it, and an invalid one that looks like ours (``RDViTTrainer_frac0``) stops the lookup
with a message naming the valid forms. The import is guarded like ``rdvit_trainers``: a failure must never break the
lookup of nnU-Net's stock trainers.
"""

import warnings

try:
    from nnunet_rdvit.training.fraction_trainers import STANDARD_FRACTION_TRAINERS, fraction_trainer
except Exception as error:  # noqa: BLE001 - any failure must leave nnU-Net's stock trainers usable
    warnings.warn(f"nnunet-rdvit data-fraction trainers are unavailable ({type(error).__name__}: {error}); "
                  "reinstall with `pip install nnunet-rdvit` to use them", stacklevel=2)
else:
    globals().update(STANDARD_FRACTION_TRAINERS)
    __all__ = sorted(STANDARD_FRACTION_TRAINERS)

    def __getattr__(name: str) -> type:
        trainer = fraction_trainer(name)
        if trainer is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return trainer

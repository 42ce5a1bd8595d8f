"""RD-ViT ablation trainers for ``nnUNetv2_train ... -tr RDViTTrainer_NoACT`` (also ``_NoLoRA``, ``_NoLTI``,
``_SingleLoop``, ``_RandomLoops``). Guarded like ``rdvit_trainers``: a failure must never break the lookup of
nnU-Net's stock trainers.
"""

import warnings

try:
    from nnunet_rdvit.training.ablation_trainers import ABLATION_TRAINERS
except Exception as error:  # noqa: BLE001 - any failure must leave nnU-Net's stock trainers usable
    warnings.warn(f"nnunet-rdvit ablation trainers are unavailable ({type(error).__name__}: {error}); "
                  "reinstall with `pip install nnunet-rdvit` to use them", stacklevel=2)
else:
    globals().update(ABLATION_TRAINERS)
    __all__ = sorted(ABLATION_TRAINERS)

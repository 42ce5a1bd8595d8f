"""nnunet-rdvit's trainers for ``nnUNetv2_train ... -tr NAME``: every one registered with
:func:`~nnunet_rdvit.training.registry.register_trainer` (``RDViTTrainer``, ``RDViTTrainer_MoE``, ``ViTTrainer``,
``RDViTTrainer_demo``, the ablations) and their data-fraction variants (``RDViTTrainer_frac10``,
``..._ep5_it20_bs8``, ``..._min30``; :mod:`nnunet_rdvit.training.fraction_trainers`).

Each name is looked up when nnU-Net asks for it (module ``__getattr__``), so this file lists none. An invalid name
that looks like a data-fraction trainer (``RDViTTrainer_frac0``) stops the lookup with a message naming the valid
forms. The import is guarded: nnU-Net imports every module of its trainer tree during a lookup, and one import
error would break the lookup of every trainer after it, stock ones included.
"""

import warnings

try:
    from nnunet_rdvit.training.fraction_trainers import fraction_trainer
    from nnunet_rdvit.training.registry import lookup_trainers
except Exception as error:  # noqa: BLE001 - any failure must leave nnU-Net's stock trainers usable
    warnings.warn(f"nnunet-rdvit trainers are unavailable ({type(error).__name__}: {error}); "
                  "reinstall with `pip install nnunet-rdvit` to use them", stacklevel=2)
else:
    def __getattr__(name: str) -> type:
        trainer = lookup_trainers().get(name) or fraction_trainer(name)
        if trainer is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return trainer

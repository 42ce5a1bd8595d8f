"""RD-ViT, RD-ViT+MoE and ViT-baseline trainers for ``nnUNetv2_train ... -tr NAME``.

The import is guarded: nnU-Net imports every module of its trainer tree during a lookup, and one
import error would break the lookup of every trainer after it, stock ones included.
"""

import warnings

try:
    from nnunet_rdvit.training import RDViTTrainer, RDViTTrainer_demo, RDViTTrainer_MoE, ViTTrainer
except Exception as error:  # noqa: BLE001 - any failure must leave nnU-Net's stock trainers usable
    warnings.warn(f"nnunet-rdvit trainers are unavailable ({type(error).__name__}: {error}); "
                  "reinstall with `pip install nnunet-rdvit` to use them", stacklevel=2)
else:
    __all__ = ["RDViTTrainer", "RDViTTrainer_MoE", "RDViTTrainer_demo", "ViTTrainer"]

"""ImageNet-style classification side module: ViT/DeiT baseline, bViT (and bViT-TE), the RD-ViT
classifier, Edge-RecViT and Raptor-style distilled students, built from the segmentation networks'
attention, block and recurrent core.

Importing this package registers every model in timm's registry (timm has no plugin discovery, so the
import is the hook)::

    import timm
    import nnunet_rdvit.classification  # noqa: F401  registers bvit_base_patch16_224, …

    model = timm.create_model("bvit_base_patch16_224", num_classes=100)

``import nnunet_rdvit`` alone stays light and does not import timm.
"""

from nnunet_rdvit.classification.bvit import BlockRecurrentViT
from nnunet_rdvit.classification.edge_recvit import EdgeRecViT
from nnunet_rdvit.classification.raptor import RaptorViT
from nnunet_rdvit.classification.rdvit import RecurrentDepthViT
from nnunet_rdvit.classification.registry import MODEL_CONFIGS, create_classifier
from nnunet_rdvit.classification.vit import VisionTransformer

__all__ = ["MODEL_CONFIGS", "BlockRecurrentViT", "EdgeRecViT", "RaptorViT", "RecurrentDepthViT",
           "VisionTransformer", "create_classifier"]

"""Dimension-generic (2D/3D) RD-ViT and ViT segmentation networks and their building blocks."""

from nnunet_rdvit.networks.aux_outputs import AuxOutputs
from nnunet_rdvit.networks.patch_embed import check_token_size, round_up_to_multiple
from nnunet_rdvit.networks.segmentation import RDViT, TokenSegmentationNetwork, ViT

__all__ = ["AuxOutputs", "RDViT", "TokenSegmentationNetwork", "ViT", "check_token_size", "round_up_to_multiple"]

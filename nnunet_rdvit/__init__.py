"""nnunet-rdvit: recurrent-depth Vision Transformers (RD-ViT) for nnU-Net v2.

Importing the package is cheap on purpose: nnU-Net imports our trainer modules on every
``-tr`` lookup, so heavy submodules are only imported where they are used.
"""

from pathlib import Path as _Path

from nnunet_rdvit.checkout import install_checkout_finder as _install_checkout_finder

__version__ = "0.1.0"

_install_checkout_finder(_Path(__file__).resolve().parent)  # nnunet_rdvit.dataset_conversion in a checkout

"""nnunet-rdvit: recurrent-depth Vision Transformers (RD-ViT) for nnU-Net v2.

Importing the package is cheap on purpose: nnU-Net imports our trainer modules on every
``-tr`` lookup, so heavy submodules are only imported where they are used.
"""

__version__ = "0.1.0"

"""nnunet-rdvit trainers, exposed to nnU-Net's ``-tr`` lookup.

Installed by ``pip install .`` as ``nnunetv2.training.nnUNetTrainer.nnunet_rdvit`` (inside nnU-Net's
trainer tree, where the lookup walks); with an editable install, point ``nnUNet_extTrainer`` at this
folder instead. Every module here only imports from the ``nnunet_rdvit`` package, so the same files
work both ways.
"""

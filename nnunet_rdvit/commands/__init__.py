"""Sub-commands of the ``nnunet-rdvit`` command line."""

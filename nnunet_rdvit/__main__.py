"""Allows ``python -m nnunet_rdvit``."""

from nnunet_rdvit.cli import main

raise SystemExit(main())

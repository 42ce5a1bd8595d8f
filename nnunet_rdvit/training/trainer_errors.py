"""Errors raised while nnU-Net looks up or sets up one of our trainers, readable through nnU-Net's own commands.

``nnUNetv2_train`` and ``nnUNetv2_predict`` catch nothing: any exception from a trainer lookup, constructor or
checkpoint load ends in a Python traceback. :class:`TrainerSetupError` is a :class:`UserError` (our own command
line prints it as one line, exit 2) that is also a :class:`SystemExit`, so where nothing catches it the
interpreter prints just ``error: <message>`` and exits 1 — the one clean line a stock command can give.
"""

from __future__ import annotations

from nnunet_rdvit.errors import UserError


class TrainerSetupError(UserError, SystemExit):
    """A trainer name, configuration or checkpoint the user can fix; the message names the problem and the fix."""

    def __init__(self, message: str):
        super().__init__(message)
        self.code = f"error: {message}"  # what the interpreter prints (exit status 1) if nothing catches it


def require_configuration(plans: dict, configuration: str) -> None:
    """Refuses a configuration the plans do not have, naming the ones they have and how to add it."""
    available = sorted(plans.get("configurations", {}))
    if configuration not in available:
        raise TrainerSetupError(
            f"configuration {configuration!r} is not in the plans {plans.get('plans_name', '')!r} of "
            f"{plans.get('dataset_name', 'this dataset')} (available: {', '.join(available) or 'none'}); choose one "
            f"of those, or plan it first with nnUNetv2_plan_and_preprocess -c {configuration}")

"""What ``-device auto|cpu|cuda`` means, decided in one place for every command.

torch is imported only when a device is resolved, so torch-free modules (the experiment runner, the demo's
set-up) can use this without paying for the import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnunet_rdvit.errors import UserError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device_name(name: str, cuda_available: bool | None = None) -> str:
    """``"auto"`` → ``"cuda"`` when a CUDA GPU is there, else ``"cpu"``; ``"cuda"`` without one is refused.

    ``cuda_available`` overrides torch's own answer for callers that decide from something else (the
    experiment runner counts the GPUs ``CUDA_VISIBLE_DEVICES`` lets its child processes see).
    """
    if name not in DEVICE_CHOICES:
        raise UserError(f"unknown device {name!r}; choose {', '.join(DEVICE_CHOICES)}")
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if name == "cuda" and not cuda_available:
        raise UserError("-device cuda, but torch sees no CUDA GPU; use -device cpu (or auto)")
    if name == "auto":
        return "cuda" if cuda_available else "cpu"
    return name


def resolve_device(name: str) -> torch.device:
    """:func:`resolve_device_name` as a ``torch.device``."""
    import torch

    return torch.device(resolve_device_name(name))

"""The network inside the wrappers training puts around it, for code that needs its own attributes."""

from __future__ import annotations

from torch import nn


def unwrap_network(module: nn.Module) -> nn.Module:
    """``module`` without its DistributedDataParallel (``.module``) and torch.compile (``._orig_mod``) wrappers,
    in any nesting: the network's own attributes (``last_aux``, ``core``, ``moe_layers``) live only there."""
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):
            module = module._orig_mod
        else:
            return module

"""What an analysis can ask of a model's network: loops, halting, experts. Refuses networks without loops."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from nnunet_rdvit.errors import UserError
from nnunet_rdvit.unwrap import unwrap_network


@dataclass(frozen=True)
class RecurrentNetwork:
    network: nn.Module
    num_loops: int  # T, the loops it was trained with
    min_loops: int  # the fewest loops the core may run
    act: bool  # trained with ACT halting
    num_experts: int  # 0 without MoE
    token_size: tuple[int, ...]


def recurrent_network(network: nn.Module, trainer: str) -> RecurrentNetwork:
    """The recurrent core's settings, or a :class:`UserError` for networks without loops (ViT, U-Net)."""
    network = unwrap_network(network)  # under torch.compile (nnUNet_compile=t)
    core = getattr(network, "core", None)
    if core is None or not hasattr(core, "num_loops"):
        kind = type(network).__name__
        raise UserError(f"analyze studies recurrent-depth models (depth extrapolation, ACT halting, MoE experts); "
                        f"the network of {trainer} ({kind}) has no recurrent loop, so none of its sections apply "
                        f"(use nnU-Net's own validation for its Dice)")
    moe = network.moe_layers() if hasattr(network, "moe_layers") else []
    return RecurrentNetwork(network, int(core.num_loops), int(core.min_loops), bool(core.act),
                            int(moe[0].num_experts) if moe else 0, tuple(network.token_size))

"""RD-ViT+MoE under DistributedDataParallel as nnU-Net wraps it (no ``find_unused_parameters``).

Two CPU processes with the gloo backend; expert 3 is barred from routing so it receives no token.
A control model with a genuinely unused parameter shows that this harness does catch the failure.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_steps(model: nn.Module, x: torch.Tensor) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):  # DDP reports unused parameters at the start of the following step
        optimizer.zero_grad()
        model(x).float().square().mean().backward()
        optimizer.step()


class _UnusedParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)

    def forward(self, x):
        return self.used(x)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from nnunet_rdvit.networks import RDViT

    torch.manual_seed(0)
    network = RDViT(1, 4, (16, 16), (4, 4), embed_dim=16, num_heads=2, num_loops=3, moe_experts=4, moe_top_k=1)
    (moe,) = network.moe_layers()
    moe.selection_bias[3] = -1e4  # expert 3 never selected
    torch.manual_seed(rank)
    _two_steps(DDP(network), torch.randn(2, 1, 16, 16))
    try:
        _two_steps(DDP(_UnusedParameter()), torch.randn(3, 4))
        control = "control-passed"
    except RuntimeError:
        control = "control-failed"
    Path(out_dir, f"rank{rank}.txt").write_text(f"moe-ok {control}")
    dist.destroy_process_group()


def test_moe_trains_under_ddp_when_an_expert_gets_no_token(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        ok, control = (tmp_path / f"rank{rank}.txt").read_text().split()
        assert ok == "moe-ok"
        assert control == "control-failed", "the harness must detect a genuinely unused parameter"

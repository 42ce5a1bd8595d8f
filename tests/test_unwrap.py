"""One unwrap for DDP and torch.compile (the trainer's handled both, analysis only compile, classification only DDP)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from nnunet_rdvit.unwrap import unwrap_network


def test_plain_and_compiled_networks() -> None:
    network = nn.Linear(2, 2)
    assert unwrap_network(network) is network
    assert unwrap_network(torch.compile(network)) is network  # compiling is lazy: nothing is traced here


def test_ddp_around_a_compiled_network(tmp_path: Path) -> None:
    network = nn.Linear(2, 2)
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(torch.compile(network))  # as nnU-Net wraps under DDP
        assert unwrap_network(wrapped) is network
        assert unwrap_network(nn.parallel.DistributedDataParallel(network)) is network
    finally:
        dist.destroy_process_group()

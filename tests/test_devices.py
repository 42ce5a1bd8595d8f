"""The one ``--device`` resolution every command uses (it replaced four copies with three error wordings)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nnunet_rdvit.devices import resolve_device, resolve_device_name
from nnunet_rdvit.errors import UserError


@pytest.mark.parametrize("name, cuda, expected", [
    ("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cpu", False, "cpu"), ("cuda", True, "cuda"),
])
def test_resolve_device_name(name: str, cuda: bool, expected: str) -> None:
    assert resolve_device_name(name, cuda_available=cuda) == expected


def test_cuda_without_a_gpu_and_unknown_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="torch sees no CUDA GPU; use -device cpu"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="unknown device 'gpu'; choose auto, cpu, cuda"):
        resolve_device_name("gpu")
    assert resolve_device("auto") == torch.device("cpu")


def test_importing_it_leaves_torch_unimported() -> None:
    code = "import sys, nnunet_rdvit.devices, nnunet_rdvit.experiments.runner; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

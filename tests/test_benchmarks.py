"""The benchmark scripts run end to end (--quick: tiny patches) and print their tables; timings are not checked."""

from __future__ import annotations

import sys

import pytest
import torch

from script_support import BENCHMARKS


@pytest.fixture
def benchmarks_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their siblings, as when run directly


def test_quick_benchmark_prints_every_table(benchmarks_on_path: None, capsys: pytest.CaptureFixture) -> None:
    import run_all

    threads = torch.get_num_threads()
    try:
        run_all.main(["--quick", "--threads", "1"])  # one thread: far less slowed by other jobs on the machine
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    for title in ("2d: size and speed", "3d_fullres: peak memory", "dense vs sparse ACT", "Cost as loops grow",
                  "Per-loop gradient checkpointing", "Cost as tokens grow", "running fraction", "Targets"):
        assert title in printed, title
    assert "| U-Net" in printed and "| RD-ViT+MoE" in printed and "×ViT" in printed
    for configuration in ("2d", "3d_fullres"):
        assert f"RD-ViT sparse inference per ACDC volume ≤ 0.2 × the U-Net's ({configuration})" in printed


def test_peak_memory_worker_reports_a_positive_peak(benchmarks_on_path: None) -> None:
    from measure import peak_cpu_memory

    from nnunet_rdvit.networks import RDViT

    network = RDViT(1, 4, (32, 32), (8, 8), embed_dim=32, num_heads=2)
    memory = peak_cpu_memory(network, "train", 2, (32, 32), 4)
    assert memory["peak_mb"] > 0 and memory["step_mb"] >= 0
    assert sys.modules.get("rss_worker") is None  # measured in a fresh process, not this one

"""Measuring: interleaved median timings, FLOPs, peak memory, and nnU-Net's sliding-window predictor.

Timings of the models being compared are interleaved (model A, B, C, A, B, C, ...) and reported as
medians, so that load from other processes on a shared machine hits all of them alike and the
ratios stay meaningful even when the absolute times drift.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from nnunet_rdvit.flops import count_flops

from acdc_setup import DATASET_JSON, Setup
from workloads import autocast, bench_image, synchronize

HERE = Path(__file__).resolve().parent


def time_once(call: Callable[[], object], device: torch.device) -> float:
    """Seconds for one call: CUDA events on a GPU (asynchronous kernels), a wall clock on the CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000
    begin = time.perf_counter()
    call()
    return time.perf_counter() - begin


def interleaved_medians(calls: dict[str, Callable[[], object]], device: torch.device, repeats: int,
                        warmup: bool = True, budget_s: float = 3.0, max_rounds: int = 15,
                        slow_s: float = 20.0) -> dict[str, float]:
    """Median seconds per call over interleaved rounds.

    With ``warmup`` each call first runs once; that run sets how many timed rounds the call gets:
    at least ``repeats``, more (up to ``max_rounds``) while they fit in ``budget_s``, since short calls
    are the noisiest. A call whose first run took over ``slow_s`` keeps that run as its one sample,
    to keep the whole benchmark within minutes.
    """
    rounds = dict.fromkeys(calls, repeats)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for name, call in calls.items():
        if not warmup:
            continue
        first = time_once(call, device)
        if first > slow_s:
            samples[name], rounds[name] = [first], 0
        else:
            rounds[name] = max(repeats, min(max_rounds, int(budget_s / first)))
    for round_index in range(max(rounds.values())):
        for name, call in calls.items():
            if round_index < rounds[name]:
                samples[name].append(time_once(call, device))
    return {name: statistics.median(values) for name, values in samples.items()}


def parameter_count(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def peak_cpu_memory(network: nn.Module, phase: str, batch: int, patch: tuple[int, ...],
                    num_classes: int) -> dict[str, float]:
    """Peak RSS of one training step or patch inference, in a fresh process (see rss_worker.py)."""
    with tempfile.TemporaryDirectory() as folder:
        network_file = Path(folder) / "network.pt"
        torch.save(network, network_file)
        command = [sys.executable, str(HERE / "rss_worker.py"), str(network_file), phase, str(batch),
                   str(num_classes), str(torch.get_num_threads()), *map(str, patch)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"memory worker failed for {phase}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_cuda_memory(call: Callable[[], object], device: torch.device) -> float | None:
    """Peak allocated CUDA memory of one call in MiB, or None on a machine without a GPU."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    call()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def volume_prediction(network: nn.Module, setup: Setup, device: torch.device) -> Callable[[], torch.Tensor]:
    """A closure predicting one ACDC-sized volume with nnU-Net's own sliding-window predictor.

    The network object is handed to ``nnUNetPredictor.manual_initialization`` (as nnU-Net's trainer
    does for its final validation). Default tile overlap (0.5) and Gaussian weighting; mirroring off,
    which would multiply every figure by the number of mirror combinations (4 in 2d, 8 in 3d).
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(device=device, use_mirroring=False, allow_tqdm=False)
    predictor.manual_initialization(network.to(device), setup.plans_manager, setup.configuration, None,
                                    DATASET_JSON, "benchmark", None)
    volume = bench_image(1, setup.volume_shape[1:])[0]  # (C, Z, Y, X)

    def predict() -> torch.Tensor:
        return predictor.predict_sliding_window_return_logits(volume)

    return predict


def forward_flops(network: nn.Module, patch: tuple[int, ...], device: torch.device) -> int:
    """FLOPs of one patch inference (batch 1)."""
    image = bench_image(1, patch, device)
    network.to(device).eval()
    with torch.inference_mode(), autocast(device):
        return count_flops(lambda: network(image))

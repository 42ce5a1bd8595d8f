"""RD-ViT (dense and sparse ACT), RD-ViT+MoE, the ViT baseline and nnU-Net's default U-Net on ACDC plans.

    python benchmarks/bench_models.py [--quick] [--plans-json nnUNetPlans.json] [--repeats N]

Per configuration (2d, 3d_fullres): parameters, FLOPs per patch, training-step time, inference time per
patch and per ACDC-sized volume through nnU-Net's predictor, and peak memory, with ratios to the U-Net
and to the ViT; then where RD-ViT's inference time goes and what token-sparse ACT saves in each part.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from nnunet_rdvit.commands.argument_types import existing_file, positive_int
from nnunet_rdvit.devices import resolve_device
from nnunet_rdvit.flops import count_flops
from nnunet_rdvit.networks import RDViT

from acdc_setup import MODELS, NUM_CLASSES, Setup, load_setups, stagger_halting
from measure import (forward_flops, interleaved_medians, parameter_count, peak_cpu_memory,
                     peak_cuda_memory, volume_prediction)
from tables import ratio, table
from workloads import bench_image, patch_inference, training_step

PONDER_TIME = 2.5  # mean loops per token the RD-ViT halting is set to (of T = 6), see stagger_halting


@dataclass
class ModelResult:
    params: int
    gflops: float
    train_s: float
    patch_s: float
    volume_s: float
    rss_train: dict[str, float | None]
    rss_infer: dict[str, float | None]
    cuda_train_mib: float | None = None
    cuda_infer_mib: float | None = None
    ponder_time: float | None = None
    loops_executed: int | None = None


@dataclass
class SparseRow:
    part: str
    dense_gflops: float | None
    sparse_gflops: float | None
    dense_s: float
    sparse_s: float


@dataclass
class ConfigurationResult:
    setup: Setup
    models: dict[str, ModelResult]
    sparse: list[SparseRow]
    ponder_time: float
    num_loops: int


def quiet(call):
    """nnU-Net's predictor prints on construction; keep the tables readable."""
    with contextlib.redirect_stdout(io.StringIO()):
        return call()


def build_networks(setup: Setup) -> tuple[dict[str, torch.nn.Module], dict[str, tuple[float, int]]]:
    """The compared networks, identically seeded, RD-ViT halting staggered; RD-ViT sparse is a copy of dense."""
    networks, halting = {}, {}
    image = bench_image(1, setup.patch_size)
    for name in MODELS:
        if name == "RD-ViT sparse":
            networks[name] = copy.deepcopy(networks["RD-ViT dense"])
            networks[name].core.sparse_act = True
            halting[name] = halting["RD-ViT dense"]
            continue
        torch.manual_seed(0)
        networks[name] = setup.build(name)
        if isinstance(networks[name], RDViT):
            halting[name] = stagger_halting(networks[name].eval(), image, PONDER_TIME)
    return networks, halting


def benchmark_configuration(setup: Setup, device: torch.device, repeats: int, warmup: bool,
                            memory: bool) -> ConfigurationResult:
    networks, halting = build_networks(setup)
    patch, batch = setup.patch_size, setup.train_batch
    gflops = {name: forward_flops(net, patch, device) / 1e9 for name, net in networks.items()}
    infer = {name: patch_inference(net, patch, device) for name, net in networks.items()}
    patch_s = interleaved_medians(infer, device, repeats, warmup)
    volume = quiet(lambda: {name: volume_prediction(net, setup, device) for name, net in networks.items()})
    volume_s = quiet(lambda: interleaved_medians(volume, device, repeats, warmup))
    sparse = sparse_breakdown(networks["RD-ViT dense"], setup, device, repeats, warmup,
                              volume_s["RD-ViT dense"], volume_s["RD-ViT sparse"])
    # training last: its optimiser steps change the weights (and so the staggered halting)
    train = {name: training_step(net, batch, patch, NUM_CLASSES, device) for name, net in networks.items()}
    train_s = interleaved_medians(train, device, repeats, warmup)

    def rss(network: torch.nn.Module, phase: str, batch: int) -> dict[str, float | None]:
        if not memory:
            return {"peak_mb": None, "step_mb": None}
        return peak_cpu_memory(network, phase, batch, patch, NUM_CLASSES)

    models = {}
    for name, net in networks.items():
        models[name] = ModelResult(
            params=parameter_count(net), gflops=gflops[name], train_s=train_s[name], patch_s=patch_s[name],
            volume_s=volume_s[name],
            rss_train=rss(net, "train", batch), rss_infer=rss(net, "infer", 1),
            cuda_train_mib=peak_cuda_memory(train[name], device),
            cuda_infer_mib=peak_cuda_memory(infer[name], device),
            ponder_time=halting.get(name, (None, None))[0], loops_executed=halting.get(name, (None, None))[1],
        )
    return ConfigurationResult(setup, models, sparse, halting["RD-ViT sparse"][0],
                               networks["RD-ViT sparse"].core.num_loops)


@torch.inference_mode()
def sparse_breakdown(network: RDViT, setup: Setup, device: torch.device, repeats: int, warmup: bool,
                     volume_dense_s: float, volume_sparse_s: float) -> list[SparseRow]:
    """Per part of one patch inference, dense vs sparse ACT on the same weights and input."""
    network.to(device).eval()
    image = bench_image(1, setup.patch_size, device)
    tokens, grid, skips = network.embed(image)
    features = network.core(tokens)[0]
    core = network.core

    def with_mode(sparse: bool, call):
        def run():
            core.sparse_act = sparse
            return call()
        return run

    parts = {
        "encoder + patch embedding": lambda: network.embed(image),
        "recurrent core": lambda: core(tokens),
        "norm + decoder": lambda: network.decoder(network.norm(features), grid, skips),
        "whole network (patch)": lambda: network(image),
    }
    calls = {(part, sparse): with_mode(sparse, call) for part, call in parts.items() for sparse in (False, True)}
    seconds = interleaved_medians(calls, device, repeats, warmup)
    flops = {key: count_flops(call) / 1e9 for key, call in calls.items()}
    core.sparse_act = False
    rows = [SparseRow(part, flops[(part, False)], flops[(part, True)], seconds[(part, False)], seconds[(part, True)])
            for part in parts]
    rows.append(SparseRow("ACDC volume (nnU-Net predictor)", None, None, volume_dense_s, volume_sparse_s))
    return rows


def format_configuration(result: ConfigurationResult, device: torch.device) -> str:
    setup, models = result.setup, result.models
    unet, vit = models["U-Net"], models["ViT"]
    plans_batch = setup.configuration.batch_size
    rows = []
    for name, m in models.items():
        row = [name]
        for attr in ("params", "gflops", "train_s", "patch_s", "volume_s"):
            value = getattr(m, attr)
            row += [value / 1e6 if attr == "params" else value, ratio(value, getattr(unet, attr)),
                    ratio(value, getattr(vit, attr))]
        rows.append(row)
    speed = table(
        f"{setup.name}: size and speed (patch {'×'.join(map(str, setup.patch_size))}, device {device.type})",
        ["model", "params M", "×U-Net", "×ViT", "GFLOP/patch", "×U-Net", "×ViT",
         f"train step s (batch {setup.train_batch})", "×U-Net", "×ViT", "infer s/patch", "×U-Net", "×ViT",
         f"infer s/volume {'×'.join(map(str, setup.volume_shape[1:]))}", "×U-Net", "×ViT"],
        rows,
        [f"Training step: forward + loss + backward + optimiser step at batch {setup.train_batch} (the plans say "
         f"{plans_batch}); RD-ViT sparse trains with sparse ACT too. Times are medians of interleaved runs after "
         "a warm-up; a call slower than 20 s is timed once (its first run).",
         "Volume: nnU-Net's predict_sliding_window_return_logits, tile step 0.5, Gaussian, no mirroring; "
         "RD-ViT+MoE runs sparse ACT there automatically (eval mode).",
         f"RD-ViT halting staggered to ponder time {PONDER_TIME} of T = {result.num_loops} on the benchmark patch "
         f"(reached: {result.ponder_time:.2f}); see acdc_setup.stagger_halting."])
    memory_rows = []
    for name, m in models.items():
        memory_rows.append([name, m.rss_train["peak_mb"], m.rss_train["step_mb"],
                            ratio(m.rss_train["step_mb"], unet.rss_train["step_mb"]),
                            ratio(m.rss_train["step_mb"], vit.rss_train["step_mb"]),
                            m.rss_infer["peak_mb"], m.rss_infer["step_mb"],
                            ratio(m.rss_infer["step_mb"], unet.rss_infer["step_mb"]),
                            ratio(m.rss_infer["step_mb"], vit.rss_infer["step_mb"]),
                            m.cuda_train_mib, m.cuda_infer_mib])
    memory = table(
        f"{setup.name}: peak memory",
        ["model", "train RSS MB", "train Δ MB", "×U-Net", "×ViT", "infer RSS MB", "infer Δ MB", "×U-Net", "×ViT",
         "CUDA train MiB", "CUDA infer MiB"],
        memory_rows,
        ["RSS: peak resident memory of a fresh process that loads the network and runs one training step "
         "(or one patch inference); Δ: that peak minus the resident memory just before the call.",
         "CUDA: peak allocated memory above the resident weights (— : no GPU on this machine)."])
    bound = 1.2 * result.ponder_time / result.num_loops
    sparse_rows = [[r.part, r.dense_gflops, r.sparse_gflops, r.dense_s, r.sparse_s,
                    f"{r.sparse_s / r.dense_s:.2f}", "yes" if r.sparse_s <= bound * r.dense_s else "no"]
                   for r in result.sparse]
    sparse = table(
        f"{setup.name}: RD-ViT inference, dense vs sparse ACT (same weights, same input)",
        ["part", "GFLOP dense", "GFLOP sparse", "s dense", "s sparse", "sparse/dense", f"≤ {bound:.2f}?"],
        sparse_rows,
        [f"Bound of the target: 1.2 × ponder time / T = 1.2 × {result.ponder_time:.2f} / {result.num_loops} = "
         f"{bound:.2f}. Patch embedding and decoder do not loop, so ACT cannot save there."])
    return "\n".join([speed, memory, sparse])


def run(quick: bool = False, plans: Path | None = None, repeats: int | None = None) -> list[ConfigurationResult]:
    device = resolve_device("auto")
    repeats = repeats or (1 if quick else 3)
    results = []
    for setup in load_setups(plans, quick):
        results.append(benchmark_configuration(setup, device, repeats, warmup=not quick, memory=not quick))
        print(format_configuration(results[-1], device), flush=True)
    return results


def build_parser() -> argparse.ArgumentParser:
    """The options of bench_models, bench_scaling and run_all."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny patches, one repetition: a smoke test")
    parser.add_argument("--plans-json", type=existing_file, metavar="FILE",
                        help="a real nnUNetPlans.json (default: ACDC's, built in)")
    parser.add_argument("--repeats", type=positive_int,
                        help="least timed repetitions per measurement (default 3, quick 1)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's, one per core); "
                        "on a machine shared with other jobs, 1 thread gives far steadier timings")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


if __name__ == "__main__":
    args = parse_args()
    run(args.quick, args.plans_json, args.repeats)

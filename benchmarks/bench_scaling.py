"""How RD-ViT's cost grows with loops and tokens, what per-loop checkpointing trades, what sparse ACT saves.

    python benchmarks/bench_scaling.py [--quick] [--plans-json nnUNetPlans.json] [--repeats N]

All on the 3d_fullres configuration of the ACDC plans (its token size), at batch 1, with the light head
(1×1 projection + interpolation) so that the transformer — what loops, tokens and checkpointing change —
is what is measured; the trainers' progressive decoder costs the same at every T and token count, and
its share is in bench_models' breakdown. Checkpointing is also measured on RDViTTrainer's own network.
  * loops T = 1, 2, 4, 6, 12 with every token running every loop, against a ViT of depth T (equal
    executed depth), with and without per-loop gradient checkpointing (time and peak memory);
  * tokens: growing patches at a fixed token size, dense vs sparse ACT;
  * running fraction: the recurrent core's sparse/dense time as the mean ponder time varies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nnunet_rdvit.devices import resolve_device
from nnunet_rdvit.flops import count_flops
from nnunet_rdvit.networks import RDViT, ViT
from nnunet_rdvit.number_format import MISSING
from nnunet_rdvit.training.token_grid import TOKEN_SIZE_KEY

from acdc_setup import NUM_CLASSES, Setup, load_setups, run_all_loops, stagger_halting
from measure import forward_flops, interleaved_medians, peak_cpu_memory, peak_cuda_memory
from tables import ratio, table
from workloads import bench_image, patch_inference, training_step

BATCH = 1
LOOPS = (1, 2, 4, 6, 12)
QUICK_LOOPS = (1, 2)
PONDER_TIMES = (1.5, 2.5, 3.5, 4.5)
SWEEP_DECODER = "light"
TRAINER_DECODER = "progressive"  # RDViTTrainer's and ViTTrainer's default


def token_size(setup: Setup) -> tuple[int, ...]:
    return tuple(setup.configuration.configuration[TOKEN_SIZE_KEY])


def rdvit(setup: Setup, patch: tuple[int, ...] | None = None, decoder: str = SWEEP_DECODER, **kwargs) -> RDViT:
    """RDViTTrainer's network (its defaults) but for the decoder, optionally for another patch or options."""
    torch.manual_seed(0)
    return RDViT(1, NUM_CLASSES, patch or setup.patch_size, token_size(setup), decoder=decoder, **kwargs)


def vit(setup: Setup, depth: int, decoder: str = SWEEP_DECODER) -> ViT:
    torch.manual_seed(0)
    return ViT(1, NUM_CLASSES, setup.patch_size, token_size(setup), depth=depth, decoder=decoder)


@dataclass
class LoopRow:
    decoder: str
    loops: int
    gflops: float
    train_s: float
    vit_train_s: float
    patch_s: float
    vit_patch_s: float
    checkpoint_train_s: float
    rss_mb: float
    checkpoint_rss_mb: float
    cuda_mib: float | None
    checkpoint_cuda_mib: float | None


def loops_and_checkpointing(setup: Setup, device: torch.device, loops: tuple[int, ...], repeats: int,
                            warmup: bool, memory: bool, decoder: str = SWEEP_DECODER) -> list[LoopRow]:
    patch = setup.patch_size
    networks = {}
    for t in loops:
        networks[("rdvit", t)] = rdvit(setup, decoder=decoder, num_loops=t)
        networks[("checkpointed", t)] = rdvit(setup, decoder=decoder, num_loops=t, grad_checkpointing=True)
        networks[("vit", t)] = vit(setup, t, decoder)
        for kind in ("rdvit", "checkpointed"):
            run_all_loops(networks[(kind, t)])
    train = {key: training_step(net, BATCH, patch, NUM_CLASSES, device) for key, net in networks.items()}
    infer = {key: patch_inference(net, patch, device) for key, net in networks.items() if key[0] != "checkpointed"}
    train_s = interleaved_medians(train, device, repeats, warmup)
    patch_s = interleaved_medians(infer, device, repeats, warmup)

    def rss(key) -> float | None:
        return peak_cpu_memory(networks[key], "train", BATCH, patch, NUM_CLASSES)["step_mb"] if memory else None

    return [LoopRow(decoder, t, forward_flops(networks[("rdvit", t)], patch, device) / 1e9,
                    train_s[("rdvit", t)], train_s[("vit", t)], patch_s[("rdvit", t)], patch_s[("vit", t)],
                    train_s[("checkpointed", t)], rss(("rdvit", t)), rss(("checkpointed", t)),
                    peak_cuda_memory(train[("rdvit", t)], device), peak_cuda_memory(train[("checkpointed", t)], device))
            for t in loops]


@dataclass
class TokenRow:
    patch: tuple[int, ...]
    tokens: int
    ponder_time: float
    dense_gflops: float
    sparse_gflops: float
    dense_s: float
    sparse_s: float
    train_s: float


def token_scaling(setup: Setup, device: torch.device, patches: list[tuple[int, ...]], repeats: int,
                  warmup: bool) -> list[TokenRow]:
    rows = []
    for patch in patches:
        network = rdvit(setup, patch)
        ponder, _ = stagger_halting(network.eval(), bench_image(1, patch), 2.5)
        flops, calls = {}, {}
        for sparse in (False, True):
            network.core.sparse_act = sparse
            flops[sparse] = forward_flops(network, patch, device) / 1e9
            calls[sparse] = _with_sparse(network, sparse, patch_inference(network, patch, device))
        calls["train"] = _with_sparse(network, False, training_step(network, BATCH, patch, NUM_CLASSES, device))
        seconds = interleaved_medians(calls, device, repeats, warmup)
        rows.append(TokenRow(patch, network.patch_embed.pos_embed.shape[1], ponder, flops[False], flops[True],
                             seconds[False], seconds[True], seconds["train"]))
    return rows


def _with_sparse(network: RDViT, sparse: bool, call):
    def run():
        network.core.sparse_act = sparse
        return call()
    return run


@dataclass
class FractionRow:
    ponder_time: float
    loops_executed: int
    dense_s: float
    sparse_s: float
    dense_gflops: float
    sparse_gflops: float


@torch.inference_mode()
def running_fraction(setup: Setup, device: torch.device, ponder_times: tuple[float, ...], repeats: int,
                     warmup: bool) -> list[FractionRow]:
    """The recurrent core alone (the part ACT controls), dense vs sparse, batch 1."""
    network = rdvit(setup).to(device).eval()
    image = bench_image(1, setup.patch_size, device)
    tokens = network.embed(image)[0]
    rows = []
    for target in ponder_times:
        ponder, executed = stagger_halting(network, image, target)
        calls = {sparse: _with_sparse(network, sparse, lambda: network.core(tokens)) for sparse in (False, True)}
        seconds = interleaved_medians(calls, device, repeats, warmup)
        flops = {sparse: count_flops(call) / 1e9 for sparse, call in calls.items()}
        rows.append(FractionRow(ponder, executed, seconds[False], seconds[True], flops[False], flops[True]))
    return rows


def token_patches(setup: Setup, quick: bool) -> list[tuple[int, ...]]:
    """Patches of ¼, ½, 1 and 2 × the plans' patch (fewer axes grown first), at the plans' token size."""
    patch = list(setup.patch_size)
    quarter = [patch[0] // 2, patch[1] // 2, *patch[2:]]
    half = [patch[0], patch[1] // 2, *patch[2:]]
    double = [patch[0] * 2, *patch[1:]]
    sizes = [quarter, patch] if quick else [quarter, half, patch, double]
    return [tuple(p) for p in sizes]


def format_results(setup: Setup, loops: list[LoopRow], tokens: list[TokenRow], fractions: list[FractionRow],
                   device: torch.device) -> str:
    shape = "×".join(map(str, setup.patch_size))
    loop_table = table(
        f"Cost as loops grow (3d_fullres, patch {shape}, batch {BATCH}, every token runs every loop)",
        ["decoder", "T", "GFLOP/patch", "train s", "ViT(depth T) train s", "RD/ViT", "infer s",
         "ViT(depth T) infer s", "RD/ViT"],
        [[r.decoder, r.loops, r.gflops, r.train_s, r.vit_train_s, ratio(r.train_s, r.vit_train_s), r.patch_s,
          r.vit_patch_s, ratio(r.patch_s, r.vit_patch_s)] for r in loops],
        ["ViT(depth T): the ViT baseline with T unique blocks on the same embedding and decoder (equal executed "
         "depth); RD-ViT built with num_loops = T, halting disabled by its bias (acdc_setup.run_all_loops)."])
    checkpoint_table = table(
        f"Per-loop gradient checkpointing (3d_fullres, batch {BATCH}, training step)",
        ["decoder", "T", "train s", "checkpointed s", "time ×", "train Δ RSS MB", "checkpointed Δ RSS MB",
         "memory saved", "CUDA MiB", "checkpointed CUDA MiB"],
        [[r.decoder, r.loops, r.train_s, r.checkpoint_train_s, ratio(r.checkpoint_train_s, r.train_s), r.rss_mb,
          r.checkpoint_rss_mb, _saving(r.rss_mb, r.checkpoint_rss_mb), r.cuda_mib, r.checkpoint_cuda_mib]
         for r in loops],
        ["Δ RSS: peak resident memory of one training step above the memory just before it, in a fresh process."])
    token_table = table(
        f"Cost as tokens grow (token size {'×'.join(map(str, token_size(setup)))}, halting staggered to ponder 2.5 of 6)",
        ["patch", "tokens", "ponder", "GFLOP dense", "GFLOP sparse", "infer s dense", "infer s sparse",
         "sparse/dense", f"train s (batch {BATCH})"],
        [["×".join(map(str, r.patch)), r.tokens, r.ponder_time, r.dense_gflops, r.sparse_gflops, r.dense_s,
          r.sparse_s, f"{r.sparse_s / r.dense_s:.2f}", r.train_s] for r in tokens],
        ["Whole network with the light head, batch 1: attention grows with tokens², the rest with tokens."])
    fraction_table = table(
        f"Sparse ACT vs running fraction (recurrent core only, 3d_fullres patch {shape}, batch 1, T = 6)",
        ["ponder", "loops run", "running fraction", "s dense", "s sparse", "sparse/dense", "bound 1.2·fraction",
         "holds", "GFLOP sparse/dense"],
        [[r.ponder_time, r.loops_executed, r.ponder_time / 6, r.dense_s, r.sparse_s, f"{r.sparse_s / r.dense_s:.2f}",
          f"{1.2 * r.ponder_time / 6:.2f}", "yes" if r.sparse_s <= 1.2 * r.ponder_time / 6 * r.dense_s else "no",
          f"{r.sparse_gflops / r.dense_gflops:.2f}"] for r in fractions],
        ["running fraction = mean loops executed per token / T. Halted tokens still give keys and values "
         "(their K/V projection and norm run every loop), which is the floor of the sparse cost."])
    return "\n".join([loop_table, checkpoint_table, token_table, fraction_table])


def _saving(before: float | None, after: float | None) -> str:
    return MISSING if before is None or after is None else f"{1 - after / before:.0%}"


def run(quick: bool = False, plans: Path | None = None, repeats: int | None = None) -> dict:
    device = resolve_device("auto")
    repeats = repeats or (1 if quick else 3)
    warmup = not quick
    setup = next(s for s in load_setups(plans, quick) if s.name == "3d_fullres")
    results = {
        "loops": loops_and_checkpointing(setup, device, QUICK_LOOPS if quick else LOOPS, repeats, warmup,
                                         memory=not quick)
        + loops_and_checkpointing(setup, device, (6,), repeats, warmup, memory=not quick, decoder=TRAINER_DECODER),
        "tokens": token_scaling(setup, device, token_patches(setup, quick), repeats, warmup),
        "fractions": running_fraction(setup, device, PONDER_TIMES[:2] if quick else PONDER_TIMES, repeats, warmup),
    }
    print(format_results(setup, results["loops"], results["tokens"], results["fractions"], device), flush=True)
    return results


if __name__ == "__main__":
    from bench_models import parse_args

    args = parse_args()
    run(args.quick, args.plans_json, args.repeats)

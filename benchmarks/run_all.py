"""All benchmarks in one run, then the performance targets (issues #6 and #11) checked against what was measured.

    python benchmarks/run_all.py [--quick] [--plans-json nnUNetPlans.json] [--repeats N]
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time

import torch

import bench_models
import bench_scaling
from tables import table


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {gpu}; "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def targets(models: list[bench_models.ConfigurationResult], scaling: dict) -> str:
    by_name = {result.setup.name: result for result in models}
    rows = []
    for result in models:
        bound = 1.2 * result.ponder_time / result.num_loops
        for row in result.sparse:
            if row.part in ("recurrent core", "whole network (patch)", "ACDC volume (nnU-Net predictor)"):
                value = row.sparse_s / row.dense_s
                rows.append([f"sparse/dense inference ≤ 1.2·ponder/T ({result.setup.name}, {row.part})",
                             f"{value:.2f} vs {bound:.2f}", value <= bound])
    for row in scaling["fractions"]:
        value, bound = row.sparse_s / row.dense_s, 1.2 * row.ponder_time / 6
        rows.append([f"sparse/dense ≤ 1.2·ponder/T (3d core, ponder {row.ponder_time:.1f})",
                     f"{value:.2f} vs {bound:.2f}", value <= bound])
    three_d = by_name["3d_fullres"].models
    share = three_d["RD-ViT+MoE"].params / three_d["ViT"].params
    rows.append(["RD-ViT+MoE 3d parameters ≤ 55 % of the ViT's", f"{share:.1%}", share <= 0.55])
    for row in scaling["loops"]:
        value = row.train_s / row.vit_train_s
        rows.append([f"RD-ViT train step ≤ ViT's at equal executed depth (T = {row.loops}, {row.decoder} decoder)",
                     f"{value:.2f}×", value <= 1.0])
    for row in scaling["loops"]:
        if row.loops == 6 and row.rss_mb is not None:
            saved = 1 - row.checkpoint_rss_mb / row.rss_mb
            rows.append([f"per-loop checkpointing saves ≥ 40 % training memory at T = 6 ({row.decoder} decoder)",
                         f"{saved:.0%}", saved >= 0.40])
    for result in models:
        for name in ("RD-ViT sparse", "RD-ViT+MoE"):
            value = result.models[name].volume_s / result.models["U-Net"].volume_s
            rows.append([f"{name} inference per ACDC volume ≤ 0.2 × the U-Net's ({result.setup.name})",
                         f"{value:.2f}×", value <= 0.2])
    return table("Targets", ["target", "measured", "holds"],
                 [[target, measured, "yes" if holds else "NO"] for target, measured, holds in rows])


def main(argv: list[str] | None = None) -> None:
    args = bench_models.parse_args(argv)
    started = time.perf_counter()
    print(f"# nnunet-rdvit benchmarks — {datetime.date.today().isoformat()}\n")
    print(f"Machine: {machine()}  ")
    print(f"Load average at start (other jobs on the machine): {os.getloadavg()[0]:.1f}  ")
    print(f"Command: python benchmarks/run_all.py {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    models = bench_models.run(args.quick, args.plans_json, args.repeats)
    scaling = bench_scaling.run(args.quick, args.plans_json, args.repeats)
    print(targets(models, scaling))
    print(f"Total wall time: {time.perf_counter() - started:.0f} s; load average at the end: "
          f"{os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[2]:.1f} (15 min)")


if __name__ == "__main__":
    main()

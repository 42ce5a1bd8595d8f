"""Seconds per training iteration through the stock ``nnUNetv2_train``, for any trainers on the same plans.

Unlike a synthetic forward/backward timing, this includes nnU-Net's own data loading and augmentation at
the plans' batch size. Each trainer is wrapped in a subclass (written to a temporary
``nnUNet_extTrainer`` folder) that runs one short epoch and prints the wall time of every ``train_step``;
the first iteration is reported separately as warm-up.

    python benchmarks/nnunet_iteration_time.py -d 27 -c 2d --iterations 4 \\
        -tr nnUNetTrainer RDViTTrainer RDViTTrainer_MoE ViTTrainer -device cpu

Needs nnUNet_preprocessed / nnUNet_results for a planned and preprocessed dataset.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
from pathlib import Path

from nnunet_rdvit.commands import common_arguments as common
from nnunet_rdvit.commands.argument_types import positive_int
from nnunet_rdvit.experiments.runner import resolve_devices
from nnunet_rdvit.stock_commands import run_stock_command

DEFAULT_TRAINERS = ("nnUNetTrainer", "RDViTTrainer", "ViTTrainer")

WRAPPER = '''
import time
import torch
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

_Base = recursive_find_trainer_class_by_name("{base}")


class {base}_timed(_Base):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = {iterations}
        self.num_val_iterations_per_epoch = 1

    def train_step(self, batch: dict) -> dict:
        start = time.perf_counter()
        result = super().train_step(batch)
        print(f"TIMED_STEP {{time.perf_counter() - start:.3f}} batch={{batch['data'].shape[0]}}", flush=True)
        return result

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        pass  # timing only
'''


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_dataset(parser)
    parser.add_argument("-c", "--configuration", required=True, help="nnU-Net configuration, e.g. 2d")
    parser.add_argument("-tr", "--trainers", nargs="+", default=list(DEFAULT_TRAINERS), metavar="TRAINER",
                        help=f"trainers to time, fold 0 (default: {' '.join(DEFAULT_TRAINERS)})")
    parser.add_argument("--iterations", type=positive_int, default=4,
                        help="training iterations to time, the first reported as warm-up (default: 4)")
    common.add_device(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    device = resolve_devices(args.device, "auto")[0]  # auto: cuda when a GPU is visible

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for base in args.trainers:
            Path(folder, f"timed_{base}.py").write_text(WRAPPER.format(base=base, iterations=args.iterations))
        env = {**os.environ, "nnUNet_extTrainer": folder, "nnUNet_n_proc_DA": os.environ.get("nnUNet_n_proc_DA", "0")}
        for base in args.trainers:
            log = Path(folder, f"{base}.log")
            print(f"timing {base} ({args.iterations} iterations) ...", flush=True)
            run_stock_command("nnUNetv2_train", [args.dataset, args.configuration, "0", "-tr", f"{base}_timed",
                                                 "-device", device, "--disable_checkpointing"],
                              env, log, echo=False)
            steps = [(float(t), int(b)) for t, b in re.findall(r"TIMED_STEP ([\d.]+) batch=(\d+)", log.read_text())]
            timed = [t for t, _ in steps[1:]] or [steps[0][0]]
            rows.append((base, steps[0][1], steps[0][0], statistics.median(timed)))

    reference = rows[0][3]
    print(f"\nseconds per training iteration, {args.configuration}, device {device} "
          f"(median of iterations 2..{args.iterations}; first iteration shown separately)")
    print(f"{'trainer':<22} {'batch':>5} {'first':>8} {'median':>8} {'vs ' + rows[0][0]:>20}")
    for name, batch, first, median in rows:
        print(f"{name:<22} {batch:>5} {first:>8.2f} {median:>8.2f} {median / reference:>20.2f}")


if __name__ == "__main__":
    main()

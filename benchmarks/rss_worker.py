"""Peak CPU memory of one workload, in a fresh process so that models do not pollute each other.

Usage: ``python rss_worker.py NETWORK_FILE {train,infer} BATCH NUM_CLASSES THREADS D [H] W`` — prints JSON
``{"peak_mb": peak RSS during the call, "step_mb": that peak minus the RSS just before it}``. The
kernel's high-water mark (VmHWM, what ``getrusage`` reports as ru_maxrss) is reset just before the
call, so imports and unpickling do not count. The network file is a pickled module
(``torch.save(network)``), so this process never imports nnU-Net's trainers.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import torch

from workloads import patch_inference, training_step

STATUS = Path("/proc/self/status")


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB."""
    line = next(line for line in STATUS.read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def reset_peak_rss() -> None:
    """Writing 5 to clear_refs resets the high-water mark to the current RSS (Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def main(argv: list[str]) -> None:
    network_file, phase, batch, num_classes, threads, *patch = argv
    torch.set_num_threads(int(threads))
    network = torch.load(network_file, weights_only=False)
    cpu = torch.device("cpu")
    if phase == "train":
        call = training_step(network, int(batch), tuple(map(int, patch)), int(num_classes), cpu)
    else:
        call = patch_inference(network, tuple(map(int, patch)), cpu)
    gc.collect()
    reset_peak_rss()
    before = status_mb("VmRSS")
    call()
    peak = status_mb("VmHWM")
    print(json.dumps({"peak_mb": peak, "step_mb": peak - before}))


if __name__ == "__main__":
    main(sys.argv[1:])

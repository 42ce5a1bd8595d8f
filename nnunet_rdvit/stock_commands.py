"""Running nnU-Net's own console commands (``nnUNetv2_*``) as child processes, with visible progress.

Going through the stock commands, not their Python internals, is the point: it is exactly what a
user types, including nnU-Net's trainer lookup that must find our trainers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from nnunet_rdvit.errors import UserError

# What nnU-Net needs on a small CPU machine (README.md, CPU-only machines): one export worker, no compile.
CPU_FRIENDLY_ENV = {"nnUNet_def_n_proc": "1", "nnUNet_compile": "f"}


def nnunet_environment(raw: Path, preprocessed: Path, results: Path, **extra: str) -> dict[str, str]:
    """The current environment with nnU-Net's three folders set (and CPU-friendly defaults unless already set)."""
    env = dict(os.environ)
    for key, value in CPU_FRIENDLY_ENV.items():
        env.setdefault(key, value)
    env.update(nnUNet_raw=str(raw), nnUNet_preprocessed=str(preprocessed), nnUNet_results=str(results), **extra)
    return env


def find_stock_command(name: str) -> str:
    """Path of an ``nnUNetv2_*`` console script, preferring the one beside the running interpreter."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise UserError(f"nnU-Net's command {name!r} was not found; install nnU-Net v2 (`pip install nnunetv2`) "
                        "in the environment that runs nnunet-rdvit")
    return found


def run_stock_command(name: str, args: Sequence[str], env: Mapping[str, str], log_file: Path,
                      echo: bool = True, prefix: str = "  | ") -> None:
    """Run ``name args`` streaming its output to ``log_file`` (and stdout if ``echo``); UserError on failure."""
    command = [find_stock_command(name), *map(str, args)]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        process = subprocess.Popen(command, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if echo:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()
        code = process.wait()
    if code != 0:
        raise UserError(f"`{name} {' '.join(map(str, args))}` failed with exit code {code}; "
                        f"its full output is in {log_file}")

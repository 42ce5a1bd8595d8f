"""Running an experiment grid with nnU-Net's own ``nnUNetv2_train``: resumable, spread over the visible GPUs.

* **Resume.** A job whose fold folder holds ``checkpoint_final.pth`` and ``validation/summary.json`` is finished
  and skipped. One with any checkpoint but no summary was interrupted (in training or in the final
  validation) and is continued with nnU-Net's ``--c``. Anything else starts fresh.
* **Devices.** One worker per GPU, each running one job at a time with ``CUDA_VISIBLE_DEVICES`` set to its GPU
  and taking the next waiting job when it finishes; on the CPU the jobs run one after the other, with
  nnU-Net's worker counts set for a small machine unless the environment already sets them.
* **Dry run.** The same plan, printed as one shell command per job (GPUs assigned round-robin), so a
  scheduler such as a SLURM array can run the grid across machines.
"""

from __future__ import annotations

import enum
import json
import os
import queue
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, TextIO

from nnunet_rdvit.devices import resolve_device_name
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.experiments.grid import ExperimentGrid, Job
from nnunet_rdvit.stock_commands import CPU_FRIENDLY_ENV, run_stock_command

TRAIN_COMMAND = "nnUNetv2_train"
# On a CPU, data augmentation in the main process is fastest (README.md, CPU-only machines); GPUs keep nnU-Net's defaults.
CPU_ENV = {**CPU_FRIENDLY_ENV, "nnUNet_n_proc_DA": "0"}
_CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")


class State(enum.Enum):
    DONE = "finished"
    RESUME = "continue"
    NEW = "start"


def job_state(fold_dir: Path) -> State:
    if (fold_dir / "checkpoint_final.pth").is_file() and (fold_dir / "validation" / "summary.json").is_file():
        return State.DONE
    if any((fold_dir / name).is_file() for name in _CHECKPOINTS):
        return State.RESUME
    return State.NEW


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    state: State
    device: str  # nnUNetv2_train's -device: "cpu" or "cuda"
    gpu: str | None  # CUDA_VISIBLE_DEVICES for this job in a dry run; live runs assign GPUs as workers free up

    def arguments(self, grid: ExperimentGrid) -> list[str]:
        args = [grid.dataset, self.job.configuration, str(self.job.fold), "-tr", self.job.trainer]
        if grid.plans != "nnUNetPlans":
            args += ["-p", grid.plans]
        args += ["-device", self.device]
        return args + (["--c"] if self.state is State.RESUME else [])


def visible_gpus() -> list[str]:
    """GPU ids a child process may be given: ``CUDA_VISIBLE_DEVICES`` if set, else every GPU torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip() and gpu.strip() != "-1"]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def resolve_devices(device: str, gpus: str) -> tuple[str, list[str]]:
    """``-device auto|cpu|cuda`` and ``--gpus auto|none|0,1,...`` -> (nnU-Net device, GPUs to spread jobs over)."""
    if gpus not in ("auto", "none"):
        chosen = [gpu.strip() for gpu in gpus.split(",")]
        if not all(gpu.isdigit() for gpu in chosen) or len(set(chosen)) != len(chosen):
            raise UserError(f"--gpus must be auto, none or distinct GPU ids like 0,1,3; got {gpus!r}")
        if device == "cpu":
            raise UserError(f"--gpus {gpus} contradicts -device cpu; drop one of them")
        return "cuda", chosen
    if device == "cpu" or gpus == "none":
        return ("cpu" if device == "auto" else device), []
    detected = visible_gpus()
    if device == "cuda" and not detected:
        raise UserError("-device cuda but no GPU is visible; use -device cpu, or --gpus none to print "
                        "commands for other machines")
    return resolve_device_name(device, cuda_available=bool(detected)), detected


def plan_jobs(grid: ExperimentGrid, results: Path, device: str, gpus: list[str]) -> list[PlannedJob]:
    planned = []
    for job in grid.jobs():
        state = job_state(grid.fold_dir(results, job))
        waiting = sum(1 for p in planned if p.state is not State.DONE)
        gpu = gpus[waiting % len(gpus)] if gpus and state is not State.DONE else None
        planned.append(PlannedJob(job, state, device, gpu))
    return planned


def extra_environment(device: str, gpu: str | None, environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the runner adds to the environment of one ``nnUNetv2_train`` call: the GPU or CPU settings, then
    ``environment`` (variables the caller wants in every job, e.g. snapshot checkpoints for learning curves)."""
    if gpu is not None:
        extra = {"CUDA_VISIBLE_DEVICES": gpu}
    elif device == "cpu":
        extra = {key: value for key, value in CPU_ENV.items() if key not in os.environ}
    else:
        extra = {}
    return {**extra, **(environment or {})}


def shell_command(grid: ExperimentGrid, planned: PlannedJob, environment: Mapping[str, str] | None = None) -> str:
    env = [f"{key}={shlex.quote(value)}"
           for key, value in extra_environment(planned.device, planned.gpu, environment).items()]
    return " ".join([*env, shlex.join([TRAIN_COMMAND, *planned.arguments(grid)])])


def print_dry_run(grid: ExperimentGrid, planned: list[PlannedJob], out: TextIO | None = None,
                  err: TextIO | None = None, environment: Mapping[str, str] | None = None) -> None:
    """Commands of the jobs still to run on ``out`` (stdout: one per line, nothing else); the tally on ``err``."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    for job in planned:
        if job.state is not State.DONE:
            print(shell_command(grid, job, environment), file=out)
    _print_tally(grid, planned, err)


def run_jobs(grid: ExperimentGrid, planned: list[PlannedJob], gpus: list[str], results: Path, logs: Path,
             echo: TextIO | None = None, environment: Mapping[str, str] | None = None) -> list[tuple[Job, str]]:
    """Runs every unfinished job; returns (job, error) for those that failed, after trying all of them.

    Progress and nnU-Net's output go to ``echo`` (default: stdout); ``environment`` is added to every job's.
    """
    echo = sys.stdout if echo is None else echo
    _print_tally(grid, planned, echo)
    todo = [job for job in planned if job.state is not State.DONE]
    failures: list[tuple[Job, str]] = []
    lock = threading.Lock()
    waiting: queue.Queue[tuple[int, PlannedJob]] = queue.Queue()
    for number, job in enumerate(todo, start=1):
        waiting.put((number, job))

    def worker(gpu: str | None) -> None:
        while True:
            try:
                number, planned_job = waiting.get_nowait()
            except queue.Empty:
                return
            error = _run_one(grid, planned_job, gpu, number, len(todo), results, logs, echo, lock, environment)
            if error is not None:
                with lock:
                    failures.append((planned_job.job, error))

    if len(gpus) <= 1:
        worker(gpus[0] if gpus else None)
    else:
        threads = [threading.Thread(target=worker, args=(gpu,), name=f"gpu{gpu}") for gpu in gpus]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return failures


def _run_one(grid: ExperimentGrid, planned: PlannedJob, gpu: str | None, number: int, total: int, results: Path,
             logs: Path, echo: TextIO, lock: threading.Lock, environment: Mapping[str, str] | None) -> str | None:
    job = planned.job
    where = f"GPU {gpu}" if gpu is not None else planned.device
    tag = f"[{number}/{total}]"
    log_file = logs / f"{job.trainer}__{grid.plans}__{job.configuration}__fold{job.fold}.log"
    with lock:
        print(f"{tag} {planned.state.value} {job.label()} on {where} (log: {log_file})", file=echo, flush=True)
    start = time.perf_counter()
    env = {**os.environ, **extra_environment(planned.device, gpu, environment)}
    prefix = f"  {tag} | " if gpu is not None else "  | "
    try:
        run_stock_command(TRAIN_COMMAND, planned.arguments(grid), env, log_file, echo=echo, prefix=prefix)
    except UserError as error:
        with lock:
            print(f"{tag} FAILED {job.label()}: {error}", file=echo, flush=True)
        return str(error)
    summary = grid.fold_dir(results, job) / "validation" / "summary.json"
    if not summary.is_file():
        message = f"nnUNetv2_train ended without writing {summary}; see {log_file}"
        with lock:
            print(f"{tag} FAILED {job.label()}: {message}", file=echo, flush=True)
        return message
    dice = json.loads(summary.read_text())["foreground_mean"]["Dice"]
    with lock:
        print(f"{tag} finished {job.label()} in {_duration(time.perf_counter() - start)}: validation Dice "
              f"{dice:.4f}", file=echo, flush=True)
    return None


def _print_tally(grid: ExperimentGrid, planned: list[PlannedJob], out: TextIO) -> None:
    counts = {state: sum(1 for job in planned if job.state is state) for state in State}
    device = planned[0].device if planned else "?"
    gpus = sorted({job.gpu for job in planned if job.gpu is not None})
    where = f"GPUs {', '.join(gpus)} (one job per GPU)" if gpus else f"{device}, one job at a time"
    print(f"Experiment {grid.describe()}", file=out)
    print(f"  {counts[State.DONE]} finished (skipped), {counts[State.RESUME]} to continue (--c), "
          f"{counts[State.NEW]} to start; on {where}", file=out, flush=True)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"

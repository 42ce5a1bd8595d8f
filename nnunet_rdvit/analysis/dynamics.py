"""Training dynamics of a fold: ponder time, ponder loss, balance loss and expert load over epochs.

The source is nnU-Net's own log dictionary saved in the fold's checkpoint (``logging``), which the trainers
extend with the RD-ViT series; without a readable checkpoint the printed ``training_log_*.txt`` lines are
parsed instead. The paper claims mean ponder time falls during training (2.6 → 1.4 loops).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np

# nnU-Net's own series and the RD-ViT ones (training.trainers.AUX_LOG_KEYS)
SERIES = ("ponder_time", "ponder_loss", "balance_loss", "z_loss", "expert_load", "train_losses", "val_losses",
          "mean_fg_dice", "ema_fg_dice")
_TEXT_KEYS = {"train_loss": "train_losses", "val_loss": "val_losses", "ponder_time": "ponder_time",
              "ponder_loss": "ponder_loss", "balance_loss": "balance_loss", "z_loss": "z_loss",
              "expert_load": "expert_load"}
_EPOCH = re.compile(r": Epoch (\d+)\s*$")
_VALUE = re.compile(r": (" + "|".join(_TEXT_KEYS) + r"):? (.+?)\s*$")


def training_dynamics(fold_folder: Path, checkpoint: str) -> dict:
    """Per-epoch series, each series' first and last value, and where they were read from."""
    series, source = _from_checkpoint(fold_folder / checkpoint), checkpoint
    if series is None:
        logs = sorted(fold_folder.glob("training_log_*.txt"))
        series, source = (_from_text_logs(logs), ", ".join(p.name for p in logs)) if logs else ({}, None)
    if not series:
        return {"available": False, "reason": f"no training log in {fold_folder} (neither {checkpoint} with "
                                              f"nnU-Net's logging nor training_log_*.txt)"}
    epochs = len(series.get("train_losses", next(iter(series.values()))))
    change = {key: {"first": values[0], "last": values[-1]} for key, values in series.items()
              if key != "expert_load"}
    if "expert_load" in series:
        loads = np.asarray(series["expert_load"], dtype=np.float64)
        change["expert_load_max_over_min"] = {"first": _imbalance(loads[0]), "last": _imbalance(loads[-1])}
    return {"available": True, "source": source, "epochs": epochs, "series": series, "first_and_last": change}


def _from_checkpoint(path: Path) -> dict[str, list] | None:
    import torch

    if not path.is_file():
        return None
    try:
        logging = torch.load(path, weights_only=False, map_location="cpu").get("logging")
    except Exception:  # a damaged checkpoint: the text log may still be there
        return None
    if not isinstance(logging, dict):
        return None
    return {key: _plain(logging[key]) for key in SERIES if logging.get(key)}


def _from_text_logs(logs: list[Path]) -> dict[str, list]:
    """Series from nnU-Net's printed log lines (``Epoch N``, ``train_loss x``, ``ponder_time: x``, ...); a
    later log (continued training) overrides earlier epochs."""
    by_epoch: dict[str, dict[int, object]] = {}
    for log in logs:
        epoch = None
        for line in log.read_text(errors="replace").splitlines():
            if match := _EPOCH.search(line):
                epoch = int(match.group(1))
            elif epoch is not None and (match := _VALUE.search(line)):
                try:
                    value = ast.literal_eval(match.group(2))
                except (ValueError, SyntaxError):
                    continue
                by_epoch.setdefault(_TEXT_KEYS[match.group(1)], {})[epoch] = _plain(value)
    return {key: [values[e] for e in sorted(values)] for key in SERIES if (values := by_epoch.get(key))}


def _plain(value):
    """numpy scalars and arrays (as nnU-Net logs them) → JSON-ready floats and lists."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return float(value)


def _imbalance(load: np.ndarray) -> float | None:
    """Largest over smallest expert load (1 = perfectly balanced; None if an expert got nothing)."""
    return float(load.max() / load.min()) if load.min() > 0 else None

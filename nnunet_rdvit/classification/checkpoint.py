"""Training checkpoints: everything needed to rebuild the model and continue a run step-identically.

A checkpoint holds the model's registry name and constructor arguments (so ``timm.create_model``
rebuilds it), the class names, the weights, the optimiser, schedule and grad-scaler states, the
epoch and step reached, the settings of the run and every rank's RNG states. It contains only
tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnunet_rdvit.atomic import atomic_path
from nnunet_rdvit.errors import UserError, first_sentence


def rng_state() -> dict[str, Any]:
    """This process's Python, NumPy, torch (and CUDA) generator states, as tensors and plain values."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: an interrupted save leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; give the .pt file written by "
                        "'nnunet-rdvit classify train' (e.g. <output>/last.pt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors, truncated files, foreign formats
        raise UserError(f"{path} is not a readable nnunet-rdvit checkpoint ({first_sentence(error)}); "
                        "point to a .pt file written by 'nnunet-rdvit classify train'") from error
    missing = {"model_name", "model_kwargs", "class_names", "model"} - set(checkpoint)
    if missing:
        raise UserError(f"{path} lacks {sorted(missing)}; it was not written by 'nnunet-rdvit classify train'")
    return checkpoint

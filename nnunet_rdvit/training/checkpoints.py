"""Crash-safe training checkpoints: written atomically, and a damaged one named, or replaced by an intact one.

nnU-Net's ``save_checkpoint`` writes with ``torch.save`` straight onto the final name, so a process killed
mid-write leaves a truncated ``checkpoint_latest.pth`` on which every later ``--c`` crashes. Here nnU-Net's own
``save_checkpoint`` writes to a temporary file in the same folder, renamed onto the final name only when complete
(:func:`nnunet_rdvit.atomic.atomic_path`); leftovers of a killed write are removed when the next training starts.
Loading first checks that the file can be read and, if not, either continues from the next intact checkpoint in
nnU-Net's own order of preference for ``--c`` and says so, or stops with one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from nnunet_rdvit.atomic import atomic_path, leftover_temporaries
from nnunet_rdvit.training.trainer_errors import TrainerSetupError

# The order in which nnU-Net's `nnUNetv2_train --c` picks a checkpoint (nnunetv2.run.run_training).
CONTINUE_PREFERENCE = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")
_REQUIRED_KEYS = ("network_weights", "optimizer_state", "current_epoch", "logging", "init_args")


class DamagedCheckpoint(Exception):
    """A checkpoint file that cannot be read as an nnU-Net training checkpoint."""


def read_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path`` (on the CPU), or DamagedCheckpoint saying why it cannot be used."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a truncated or corrupt file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DamagedCheckpoint(f"{path} cannot be read ({reason}); it was probably cut short by a killed "
                                f"process or a full disk") from None
    missing = [key for key in _REQUIRED_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise DamagedCheckpoint(f"{path} is not an nnU-Net training checkpoint (no {', '.join(missing)})")
    return checkpoint


class CrashSafeCheckpoints:
    """Atomic ``save_checkpoint`` and a ``load_checkpoint`` that survives a damaged file; put it before nnU-Net's
    trainer in the bases. Keeps nnU-Net's exact ``__init__`` signature."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        self.continuing_training = bool(plans.get("continue_training"))  # nnU-Net pops it in its __init__
        super().__init__(plans, configuration, fold, dataset_json, device)

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0 or self.disable_checkpointing:
            super().save_checkpoint(filename)  # writes nothing (and says so when checkpointing is disabled)
            return
        with atomic_path(filename) as temporary:
            super().save_checkpoint(str(temporary))

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        """Checks the file first; nnU-Net then loads it by name (its ``load_checkpoint`` of a dict is broken in 2.8)."""
        if isinstance(filename_or_checkpoint, dict):
            super().load_checkpoint(filename_or_checkpoint)
            return
        path = Path(filename_or_checkpoint)
        try:
            read_checkpoint(path)
        except DamagedCheckpoint as damage:
            path = self._intact_alternative(path, damage)
        super().load_checkpoint(str(path))

    def _intact_alternative(self, damaged: Path, damage: DamagedCheckpoint) -> Path:
        """For ``--c``: the next intact checkpoint after ``damaged`` in nnU-Net's order; otherwise a clear error."""
        later = CONTINUE_PREFERENCE[CONTINUE_PREFERENCE.index(damaged.name) + 1:] \
            if damaged.name in CONTINUE_PREFERENCE else ()
        if self.continuing_training:
            for name in later:
                candidate = damaged.with_name(name)
                if not candidate.is_file():
                    continue
                try:
                    checkpoint = read_checkpoint(candidate)
                except DamagedCheckpoint:
                    continue
                self.print_to_log_file(f"WARNING: {damage}. Continuing from the last intact checkpoint, {candidate} "
                                       f"(after epoch {checkpoint['current_epoch']}), instead.")
                return candidate
            raise TrainerSetupError(f"{damage}, and no intact {' or '.join(later) or 'checkpoint'} is left to "
                                    f"continue from; move it away to train this fold again from the start")
        raise TrainerSetupError(f"{damage}; move it away or use another checkpoint (nnUNetv2_train --c continues "
                                f"from the last intact one)")

    def on_train_start(self) -> None:
        super().on_train_start()
        if self.local_rank == 0:
            for leftover in leftover_temporaries(self.output_folder, "checkpoint_*.pth"):
                os.remove(leftover)

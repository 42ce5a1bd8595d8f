"""nnU-Net's own sliding-window tiles of a preprocessed array, for passes that need the network's auxiliaries.

nnU-Net's predictor only ever sees logits, so every pass that reads halting steps or expert counts runs the
network itself; it uses nnU-Net's padding and tile positions so that its tiles are exactly the prediction's.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass
class Tiling:
    padded: torch.Tensor  # (C, *spatial) padded to at least one patch, as nnU-Net pads it
    unpad: tuple[slice, ...]  # indexes ``padded`` back to the input's shape
    tiles: list[tuple]  # nnU-Net's slicers into ``padded``: (slice(None), *spatial slices) per tile

    @property
    def spatial_unpad(self) -> tuple[slice, ...]:
        return self.unpad[1:]


def sliding_window_tiling(predictor, preprocessed: torch.Tensor) -> Tiling:
    """nnU-Net's padding and tile slicers for ``preprocessed`` (C, *spatial), with the predictor's step size."""
    from acvl_utils.cropping_and_padding.padding import pad_nd_image

    patch = tuple(predictor.configuration_manager.patch_size)
    padded, unpad = pad_nd_image(preprocessed, patch, "constant", {"value": 0}, True, None)
    return Tiling(padded, tuple(unpad), predictor._internal_get_sliding_window_slicers(padded.shape[1:]))


@contextmanager
def torch_threads_as_nnunet() -> Iterator[None]:
    """The thread count nnU-Net's prediction uses (``nnUNet_def_n_proc``); more threads than free cores make
    CPU inference many times slower on a shared machine."""
    from nnunetv2.configuration import default_num_processes

    threads = torch.get_num_threads()
    torch.set_num_threads(min(default_num_processes, threads))
    try:
        yield
    finally:
        torch.set_num_threads(threads)

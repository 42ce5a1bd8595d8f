"""Volume-level ACT halting maps and MoE expert maps, on the input's voxel grid.

The network keeps per-token halting steps and expert counts of its latest call (``network.last_aux``), one
sliding-window tile at a time. We make the volume maps with a pass of our own over the *same* preprocessed
array and the *same* tiles as nnU-Net's prediction (nnU-Net's padding and tile positions, every fold of the
ensemble, no mirroring): each tile's token-grid map is upsampled to the tile by nearest neighbour (a token
covers its whole patch) and overlapping tiles and folds are averaged. The averaged maps — loops per token,
and per expert the share of a token's routed slots (over loops and top-k) — are then taken back to the input
grid along nnU-Net's own export path for probability maps (resampling, un-cropping, un-transposing) by
treating them as a multi-channel probability map. The dominant expert of a voxel is the expert with the
largest share there (a majority vote over tiles, folds, loops and top-k slots).

Token maps are coarse by construction: with 16×16 tokens one token covers 16×16 preprocessed voxels, so
the maps show which patches looped longer, not voxel-exact boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nnunet_rdvit.errors import UserError
from nnunet_rdvit.inference.model import LoadedModel
from nnunet_rdvit.inference.segmentation import Segmentation, from_nnunet_array
from nnunet_rdvit.inference.tiling import sliding_window_tiling, torch_threads_as_nnunet


@dataclass
class TokenMaps:
    halting: np.ndarray | None  # (x, y, z) mean loops per voxel; 0 where nnU-Net cropped the volume away
    expert_share: np.ndarray | None  # (E, x, y, z) share of routed slots per expert
    covered: np.ndarray  # (x, y, z) bool: inside nnU-Net's crop, where the maps are defined

    @property
    def dominant_expert(self) -> np.ndarray | None:
        """(x, y, z) uint8: 1 + index of the expert with the largest share; 0 outside the crop."""
        if self.expert_share is None:
            return None
        return np.where(self.covered, self.expert_share.argmax(0) + 1, 0).astype(np.uint8)


def check_introspectable(model: LoadedModel) -> None:
    """:class:`UserError` unless the model's network records ACT halting steps or MoE expert counts."""
    network, predictor = model.predictor.network, model.predictor
    patch = predictor.configuration_manager.patch_size
    with torch.inference_mode():
        network.to(model.device).eval()
        try:
            _, aux = network(torch.zeros((1, _input_channels(predictor), *patch), device=model.device),
                             return_aux=True)
        except TypeError:  # a network without return_aux (nnU-Net's U-Nets)
            aux = None
    if aux is None or (aux.halting_steps is None and aux.expert_counts is None):
        raise UserError(f"--introspect needs an RD-ViT model (ACT halting and/or MoE experts); the network of "
                        f"{model.trainer} ({type(network).__name__}) records neither")


@dataclass
class GridMaps:
    """Maps on nnU-Net's preprocessed grid, (channels, *grid); ``None`` where the network has no such output."""

    halting: torch.Tensor | None  # (1, *grid) mean loops
    expert_share: torch.Tensor | None  # (E, *grid)


def window_maps(model: LoadedModel, preprocessed: torch.Tensor) -> GridMaps:
    """The network's token maps over nnU-Net's tiles of ``preprocessed``, averaged over tiles and folds."""
    predictor = model.predictor
    patch = tuple(predictor.configuration_manager.patch_size)
    tiling = sliding_window_tiling(predictor, preprocessed)
    padded = tiling.padded
    halting_sum = experts_sum = None
    coverage = torch.zeros(padded.shape[1:])
    network = predictor.network.to(model.device).eval()
    with torch.inference_mode(), torch_threads_as_nnunet():
        for parameters in predictor.list_of_parameters:
            network.load_state_dict(parameters)
            for tile in tiling.tiles:
                _, aux = network(padded[tile][None].to(model.device), return_aux=True)
                where = tile[1:]
                coverage[where] += 1
                if aux.halting_steps is not None:
                    halting_sum = _accumulate(halting_sum, padded, 1, where,
                                              _to_patch(aux.halting_steps[0][None].float(), patch))
                if aux.expert_counts is not None:
                    counts = aux.expert_counts[0].float()  # (*grid, E)
                    share = counts / counts.sum(-1, keepdim=True).clamp_min(1.0)
                    experts_sum = _accumulate(experts_sum, padded, share.shape[-1], where,
                                              _to_patch(share.movedim(-1, 0), patch))
    unpadded = (slice(None), *tiling.spatial_unpad)
    return GridMaps(None if halting_sum is None else (halting_sum / coverage)[unpadded],
                    None if experts_sum is None else (experts_sum / coverage)[unpadded])


def token_maps(model: LoadedModel, segmentation: Segmentation) -> TokenMaps:
    """:func:`window_maps` of the volume, taken back to the input's voxel grid."""
    grid = window_maps(model, segmentation.preprocessed)
    present = [m for m in (grid.halting, grid.expert_share) if m is not None]
    outside = torch.zeros((1, *present[0].shape[1:]))  # channel 0: 1 outside nnU-Net's crop after un-cropping
    on_input_grid = _to_input_grid(model, torch.cat([outside, *present]), segmentation.properties)
    covered = on_input_grid[0] < 0.5
    halting = None if grid.halting is None else np.where(covered, on_input_grid[1], 0).astype(np.float32)
    share = None if grid.expert_share is None else on_input_grid[1 + (grid.halting is not None):]
    return TokenMaps(halting, share, covered)


def _to_patch(token_map: torch.Tensor, patch: tuple[int, ...]) -> torch.Tensor:
    """(C, *grid) -> (C, *patch), each token's value over its whole patch."""
    return F.interpolate(token_map[None].cpu(), size=patch, mode="nearest")[0]


def _accumulate(total: torch.Tensor | None, padded: torch.Tensor, channels: int, where: tuple,
                tile_map: torch.Tensor) -> torch.Tensor:
    if total is None:
        total = torch.zeros((channels, *padded.shape[1:]))
    total[(slice(None), *where)] += tile_map
    return total


def _to_input_grid(model: LoadedModel, maps: torch.Tensor, properties: dict) -> np.ndarray:
    """nnU-Net's resample → un-crop → un-transpose for probability maps, applied to our maps (identity nonlin)."""
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    predictor = model.predictor
    channels = {"background": 0, **{f"map{i}": i for i in range(1, len(maps))}}
    identity = LabelManager(channels, None, inference_nonlin=lambda x: x)
    _, resampled = convert_predicted_logits_to_segmentation_with_correct_shape(
        maps.numpy(), predictor.plans_manager, predictor.configuration_manager, identity, properties,
        return_probabilities=True)
    return from_nnunet_array(np.asarray(resampled, dtype=np.float32))


def _input_channels(predictor) -> int:
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    return determine_num_input_channels(predictor.plans_manager, predictor.configuration_manager,
                                        predictor.dataset_json)

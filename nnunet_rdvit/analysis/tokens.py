"""One pass of the network over a case's sliding-window tiles, keeping what every token did and saw.

The network runs as trained (its T loops, halting as trained) on nnU-Net's own tiles of the preprocessed
case. For each token of each tile we keep its reference-label histogram, the loops it ran and its MoE routing
counts. Tiles overlap (nnU-Net's step is half a patch by default), so a voxel region covered by several tiles
contributes one token per tile: statistics are over tile tokens, as the network computed them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nnunet_rdvit.analysis.cases import PreprocessedCase
from nnunet_rdvit.analysis.network import recurrent_network
from nnunet_rdvit.analysis.token_labels import UNLABELLED, token_label_histogram
from nnunet_rdvit.inference.model import LoadedModel
from nnunet_rdvit.inference.tiling import sliding_window_tiling, torch_threads_as_nnunet


@dataclass
class CaseTokens:
    name: str
    histogram: np.ndarray  # (N, labels) reference voxels per label of every tile token
    halting: np.ndarray | None  # (N,) loops each token ran; None when the model was trained without ACT
    expert_counts: np.ndarray | None  # (N, E) routed slots per expert (over loops and top-k); None without MoE


def collect_tokens(model: LoadedModel, case: PreprocessedCase, num_labels: int) -> CaseTokens:
    """Token statistics of ``case`` over every tile, with the network as trained (its current weights)."""
    predictor = model.predictor
    recurrent = recurrent_network(predictor.network, model.trainer)
    network = recurrent.network.to(model.device).eval()  # the analysed fold's weights, loaded once by analyze
    tiling = sliding_window_tiling(predictor, case.data)
    labels = np.full(tiling.padded.shape[1:], UNLABELLED, dtype=np.int16)
    labels[tiling.spatial_unpad] = case.labels
    histograms, halting, experts = [], [], []
    with torch.inference_mode(), torch_threads_as_nnunet():
        for tile in tiling.tiles:
            _, aux = network(tiling.padded[tile][None].to(model.device), return_aux=True)
            histogram = token_label_histogram(labels[tile[1:]], recurrent.token_size, num_labels)
            histograms.append(histogram.reshape(-1, num_labels))
            if recurrent.act:
                halting.append(aux.halting_steps[0].reshape(-1).cpu().numpy())
            if aux.expert_counts is not None:
                counts = aux.expert_counts[0]
                experts.append(counts.reshape(-1, counts.shape[-1]).cpu().numpy())
    return CaseTokens(case.name, np.concatenate(histograms),
                      np.concatenate(halting) if halting else None,
                      np.concatenate(experts) if experts else None)

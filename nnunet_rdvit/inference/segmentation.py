"""One volume through nnU-Net: its preprocessing, its sliding-window prediction (folds ensembled, optional
mirroring) and its own resampling back to the input grid.

The three steps are the ones ``nnUNetPredictor.predict_single_npy_array`` chains; they are called one by one
so that the preprocessed array and its properties (crop box, shapes, spacing) stay available for the
introspection maps, which must be mapped back along exactly the same path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nnunet_rdvit.inference.model import LoadedModel
from nnunet_rdvit.inference.nifti_io import Volume3D


@dataclass
class Segmentation:
    labels: np.ndarray  # (x, y, z) uint8 on the input's voxel grid
    preprocessed: torch.Tensor  # (channels, *grid) exactly what the sliding window ran on
    properties: dict  # nnU-Net's preprocessing record for this volume


def to_nnunet_array(data: np.ndarray) -> np.ndarray:
    """File voxel order (x, y, z) -> nnU-Net's (channel, z, y, x), the order its SimpleITK and nibabel readers give."""
    return np.ascontiguousarray(data.transpose(2, 1, 0)[None])


def from_nnunet_array(array: np.ndarray) -> np.ndarray:
    """(..., z, y, x) -> (..., x, y, z): the inverse of :func:`to_nnunet_array` for maps with leading channels."""
    n = array.ndim
    return np.ascontiguousarray(array.transpose(*range(n - 3), n - 1, n - 2, n - 3))


def segment(model: LoadedModel, volume: Volume3D) -> Segmentation:
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    predictor = model.predictor
    plans_manager, configuration = predictor.plans_manager, predictor.configuration_manager
    properties = {"spacing": list(volume.spacing[::-1])}  # what the readers record, in (z, y, x) order
    preprocessor = configuration.preprocessor_class(verbose=False)
    data, _, properties = preprocessor.run_case_npy(to_nnunet_array(volume.data), None, properties, plans_manager,
                                                    configuration, predictor.dataset_json)
    data = torch.from_numpy(data)
    logits = predictor.predict_logits_from_preprocessed_data(data)
    labels = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, plans_manager, configuration, predictor.label_manager, properties)
    return Segmentation(from_nnunet_array(np.asarray(labels)).astype(np.uint8), data, properties)

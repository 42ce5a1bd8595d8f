"""The smallest nnU-Net plans a trainer or network can be built from (imported by tests; not a test module)."""

from __future__ import annotations

from typing import Any, Sequence


def minimal_plans(patch_size: Sequence[int], configuration: str = "2d", dataset_name: str = "Dataset001_X",
                  **configuration_entries: Any) -> dict:
    """Plans with one configuration of ``patch_size`` (unit spacing, batch 2, nnU-Net's U-Net as architecture);
    ``configuration_entries`` add to or replace that configuration's entries."""
    ndim = len(patch_size)
    entry = {"data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "patch_size": list(patch_size),
             "spacing": [1.0] * ndim, "batch_size": 2, "normalization_schemes": ["ZScoreNormalization"],
             "use_mask_for_norm": [False],
             "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                              "arch_kwargs": {}, "_kw_requires_import": []},
             **configuration_entries}
    return {
        "dataset_name": dataset_name, "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1] * ndim,
        "original_median_shape_after_transp": list(patch_size), "image_reader_writer": "SimpleITKIO",
        "transpose_forward": list(range(ndim)), "transpose_backward": list(range(ndim)),
        "configurations": {configuration: entry},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {},
    }

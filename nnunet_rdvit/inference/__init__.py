"""Clinical-style inference on NIfTI volumes: aligned segmentations, cardiac indices, introspection maps, and
agreement of predicted with ground-truth indices. See docs/inference.md.

Python API::

    from nnunet_rdvit.inference import PredictSettings, predict, compare_indices
    result = predict(PredictSettings(inputs=[Path("acdc/training/patient001")], output=Path("out"),
                                     model=Path("nnUNet_results/Dataset027_ACDC/RDViTTrainer__nnUNetPlans__2d")))
    agreement = compare_indices(Path("out"), [Path("acdc/training")], Path("agreement"))
"""

from nnunet_rdvit.inference.agreement import AgreementResult, compare_indices
from nnunet_rdvit.inference.pipeline import CaseResult, PredictResult, PredictSettings, predict

__all__ = ["AgreementResult", "CaseResult", "PredictResult", "PredictSettings", "compare_indices", "predict"]

"""Dataset converters into nnU-Net v2's raw format, plus the patient metadata and splits they write.

Installed as ``nnunet_rdvit.dataset_conversion`` (a package-dir mapping in ``pyproject.toml``).
"""

from nnunet_rdvit.dataset_conversion.acdc import ConversionResult, convert_acdc
from nnunet_rdvit.dataset_conversion.metadata import CASE_METADATA_FILE, load_case_metadata, patient_of_case
from nnunet_rdvit.dataset_conversion.splits import patient_grouped_splits

__all__ = [
    "CASE_METADATA_FILE",
    "ConversionResult",
    "convert_acdc",
    "load_case_metadata",
    "patient_grouped_splits",
    "patient_of_case",
]

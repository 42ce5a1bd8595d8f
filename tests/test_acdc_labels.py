"""The one ACDC label map, and what its former copies spelled out by hand derived from it unchanged."""

from __future__ import annotations

from nnunet_rdvit.acdc_labels import DESCRIPTION, LABEL_NAMES, LABELS, NUM_CLASSES, STRUCTURES
from nnunet_rdvit.inference.model import is_acdc_label_set


def test_derived_forms_match_the_former_copies() -> None:
    assert list(LABELS.items()) == [("background", 0), ("RV", 1), ("MYO", 2), ("LV", 3)]
    assert list(STRUCTURES.items()) == [("RV", 1), ("MYO", 2), ("LV", 3)] and NUM_CLASSES == 4
    assert LABEL_NAMES == {"0": "background", "1": "RV", "2": "MYO", "3": "LV"}
    assert DESCRIPTION == "0 background 1 RV 2 MYO 3 LV"


def test_predict_accepts_this_packages_and_dataset027s_names_only() -> None:
    assert is_acdc_label_set(LABELS)
    assert is_acdc_label_set({"background": 0, "RV": 1, "MLV": 2, "LVC": 3})
    assert not is_acdc_label_set({"background": 0, "RV": 1, "LVC": 2, "MLV": 3})
    assert not is_acdc_label_set({**LABELS, "scar": 4})

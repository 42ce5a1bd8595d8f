"""ACDC's label values and names, and its patients' pathology groups: the converter writes and checks them,
prediction and its cardiac indices, the demo, the synthetic data and the benchmarks all read them from here."""

from __future__ import annotations

BACKGROUND, RV, MYO, LV = 0, 1, 2, 3
LABELS = {"background": BACKGROUND, "RV": RV, "MYO": MYO, "LV": LV}  # dataset.json's "labels", in value order
STRUCTURES = {name: value for name, value in LABELS.items() if value != BACKGROUND}  # the foreground ones
NUM_CLASSES = len(LABELS)  # network outputs, background included
LABEL_NAMES = {str(value): name for name, value in LABELS.items()}  # by value as a JSON key (nnU-Net's summary)
GROUPS = ("DCM", "HCM", "MINF", "NOR", "RV")  # Info.cfg's Group: the diagnosis each patient is filed under
# "0 background 1 RV 2 MYO 3 LV": what a label file's values mean, for its header's description
DESCRIPTION = " ".join(f"{value} {name}" for name, value in LABELS.items())

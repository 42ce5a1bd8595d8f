"""Low-data subsets: whole patients only, nested fractions, stratified by group, deterministic across processes."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_rdvit.data_fraction import GROUPING_BY_CASE_ID, GROUPING_BY_METADATA, select_training_subset
from nnunet_rdvit.dataset_conversion import patient_grouped_splits

REAL_ACDC = Path(__file__).resolve().parents[2] / "shared/data/acdc"
GROUPS = ("DCM", "HCM", "MINF", "NOR", "RV")
PERCENTS = (10, 25, 50, 100)


def acdc_like_metadata(n_patients: int = 100) -> dict[str, dict]:
    """ACDC's structure: groups in blocks of 20 patients, an ED and an ES frame per patient."""
    metadata = {}
    for index in range(1, n_patients + 1):
        group = GROUPS[(index - 1) * len(GROUPS) // n_patients]
        for frame in (1, 10 + index % 5):
            metadata[f"patient{index:03d}_frame{frame:02d}"] = {"patient": f"patient{index:03d}", "group": group}
    return metadata


@pytest.fixture(scope="module")
def acdc_like() -> tuple[dict[str, dict], list[dict[str, list[str]]]]:
    metadata = acdc_like_metadata()
    splits = patient_grouped_splits(metadata, patient_of={c: m["patient"] for c, m in metadata.items()})
    return metadata, splits


def test_subsets_take_whole_patients_and_never_validation_ones(acdc_like) -> None:
    metadata, splits = acdc_like
    for fold, split in enumerate(splits):
        val_patients = {metadata[c]["patient"] for c in split["val"]}
        for percent in PERCENTS:
            subset = select_training_subset(split["train"], percent, fold, metadata)
            assert set(subset.cases) <= set(split["train"])
            assert not {metadata[c]["patient"] for c in subset.cases} & val_patients
            chosen = set(subset.patients)
            # Both frames of every chosen patient, none of any other patient.
            assert set(subset.cases) == {c for c in split["train"] if metadata[c]["patient"] in chosen}
            assert len(subset.cases) == 2 * len(chosen)


def test_fractions_are_nested_and_sized_by_patients(acdc_like) -> None:
    metadata, splits = acdc_like
    for fold, split in enumerate(splits):
        subsets = [select_training_subset(split["train"], p, fold, metadata) for p in PERCENTS]
        assert [len(s.patients) for s in subsets] == [8, 20, 40, 80]  # of the fold's 80 training patients
        for smaller, larger in zip(subsets, subsets[1:]):
            assert set(smaller.cases) < set(larger.cases)
            assert larger.patients[:len(smaller.patients)] == smaller.patients  # one order, prefixes of it
        assert set(subsets[-1].cases) == set(split["train"])


def test_fractions_are_stratified_by_group(acdc_like) -> None:
    metadata, splits = acdc_like
    for fold, split in enumerate(splits):
        for percent in (5, 10, 25, 33, 50, 75):
            subset = select_training_subset(split["train"], percent, fold, metadata)
            n_chosen = len(subset.patients)
            assert set(subset.strata) == set(GROUPS)
            for group, (chosen, available) in subset.strata.items():
                assert chosen >= 1
                assert abs(chosen - n_chosen * available / subset.n_patients_available) <= 1, (fold, percent, group)


def test_every_group_is_represented_even_at_one_percent(acdc_like) -> None:
    metadata, splits = acdc_like
    subset = select_training_subset(splits[0]["train"], 1, 0, metadata)
    assert len(subset.patients) == len(GROUPS)
    assert all(chosen == 1 for chosen, _ in subset.strata.values())


def test_deterministic_across_calls_and_input_order(acdc_like) -> None:
    metadata, splits = acdc_like
    train = list(splits[2]["train"])
    first = select_training_subset(train, 25, 2, metadata)
    random.Random(0).shuffle(train)
    assert select_training_subset(train, 25, 2, metadata) == first
    assert select_training_subset(train, 25, 2, dict(reversed(list(metadata.items())))) == first


def test_folds_draw_different_patients(acdc_like) -> None:
    metadata, _ = acdc_like
    everyone = list(metadata)
    orders = {fold: select_training_subset(everyone, 10, fold, metadata).patients for fold in range(5)}
    assert len(set(orders.values())) == 5


def test_deterministic_across_processes(acdc_like) -> None:
    """Python salts str hashes per process; the subset must not depend on that (or anything else per process)."""
    metadata, splits = acdc_like
    script = ("import json, sys; from nnunet_rdvit.data_fraction import select_training_subset; "
              "args = json.load(sys.stdin); "
              "print(json.dumps([list(select_training_subset(args['train'], p, args['fold'], args['metadata']).cases)"
              " for p in (10, 25, 50)]))")
    payload = json.dumps({"train": splits[1]["train"], "fold": 1, "metadata": metadata})
    expected = [list(select_training_subset(splits[1]["train"], p, 1, metadata).cases) for p in (10, 25, 50)]
    for hash_seed in ("1", "12345"):
        result = subprocess.run([sys.executable, "-c", script], input=payload, capture_output=True, text=True,
                                check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed}, cwd=Path(__file__).parent)
        assert json.loads(result.stdout) == expected


def test_known_selection_is_stable() -> None:
    """Pins the rule itself: a change to it would silently change every published subset."""
    metadata = acdc_like_metadata()
    subset = select_training_subset(list(metadata), 5, 0, metadata)
    assert subset.patients == ("patient057", "patient098", "patient040", "patient018", "patient075")


def test_without_metadata_cases_are_grouped_by_case_id() -> None:
    cases = [f"patient{p:03d}_frame{f:02d}" for p in range(1, 11) for f in (1, 12)] + ["case_a", "case_b"]
    subset = select_training_subset(cases, 50, 0, None)
    assert subset.grouping == GROUPING_BY_CASE_ID
    assert subset.n_patients_available == 12 and len(subset.patients) == 6
    assert set(subset.strata) == {"ungrouped"}
    for patient in subset.patients:
        if patient.startswith("patient"):
            assert {f"{patient}_frame01", f"{patient}_frame12"} <= set(subset.cases)
    assert select_training_subset(cases, 50, 0, {}).cases == subset.cases


def test_metadata_without_group_forms_its_own_stratum() -> None:
    metadata = {f"p{i}_frame01": {"patient": f"p{i}", "group": "A" if i < 6 else None} for i in range(10)}
    subset = select_training_subset(metadata, 20, 3, metadata)
    assert subset.grouping == GROUPING_BY_METADATA
    assert subset.strata == {"A": (1, 6), "ungrouped": (1, 4)}


@pytest.mark.parametrize("percent", [0, 101, 12.5, True, "10"])
def test_rejects_bad_percentages(percent) -> None:
    with pytest.raises(ValueError, match="whole percentage from 1 to 100"):
        select_training_subset(["a", "b"], percent, 0)


def test_rejects_inconsistent_metadata() -> None:
    metadata = acdc_like_metadata(10)
    with pytest.raises(ValueError, match="no entry for 1 training case"):
        select_training_subset([*metadata, "patient999_frame01"], 50, 0, metadata)
    metadata["patient001_frame01"]["group"] = "RV"
    with pytest.raises(ValueError, match="patient001 into two groups"):
        select_training_subset(metadata, 50, 0, metadata)
    with pytest.raises(ValueError, match="no training cases"):
        select_training_subset([], 50, 0)


def test_real_acdc_folds() -> None:
    """On the real training set (Bernard et al., IEEE TMI 2018): 8/20/40/80 patients per fold, all groups."""
    if not (REAL_ACDC / "training").is_dir():
        pytest.skip(f"real ACDC data not found at {REAL_ACDC}")
    from nnunet_rdvit.dataset_conversion.acdc_source import parse_info_cfg

    metadata = {}  # what the converter writes, from Info.cfg alone (test_convert_acdc covers the conversion)
    for folder in sorted((REAL_ACDC / "training").glob("patient*")):
        info, problems = parse_info_cfg((folder / "Info.cfg").read_text())
        assert not problems
        for frame in (info["ed"], info["es"]):
            metadata[f"{folder.name}_frame{frame:02d}"] = {"patient": folder.name, "group": info["group"]}
    splits = patient_grouped_splits(metadata, patient_of={c: m["patient"] for c, m in metadata.items()})
    for fold, split in enumerate(splits):
        val_patients = {metadata[c]["patient"] for c in split["val"]}
        previous: set[str] = set()
        for percent, expected in zip(PERCENTS, (8, 20, 40, 80)):
            subset = select_training_subset(split["train"], percent, fold, metadata)
            assert len(subset.patients) == expected and len(subset.cases) == 2 * expected
            assert previous < set(subset.cases) and not set(subset.patients) & val_patients
            assert all(chosen >= 1 for chosen, _ in subset.strata.values()) and len(subset.strata) == 5
            assert all(abs(chosen - math.ceil(percent * available / 100)) <= 1
                       for chosen, available in subset.strata.values())
            previous = set(subset.cases)

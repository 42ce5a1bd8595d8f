"""The synthetic ACDC generator: real ACDC layout, valid labels, header geometry, determinism, speed."""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from nnunet_rdvit.synthetic_acdc import GROUPS, generate_synthetic_acdc

INFO_CFG = re.compile(r"ED: 1\nES: (\d+)\nGroup: (DCM|HCM|MINF|NOR|RV)\nHeight: \d+\.\d\nNbFrame: (\d+)\n"
                      r"Weight: \d+\.\d\n")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_acdc(tmp_path_factory.mktemp("synthetic"), n_patients=12, seed=3)


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _load(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def test_layout_matches_real_acdc(synthetic: Path) -> None:
    patients = sorted(p.name for p in (synthetic / "training").iterdir())
    assert patients == [f"patient{i:03d}" for i in range(1, 13)]
    es_frames = set()
    for name in patients:
        folder = synthetic / "training" / name
        match = INFO_CFG.fullmatch((folder / "Info.cfg").read_text())
        assert match, (folder / "Info.cfg").read_text()
        es, nb_frames = int(match.group(1)), int(match.group(3))
        assert 8 <= es <= 14 and es < nb_frames
        es_frames.add(es)
        assert sorted(p.name for p in folder.iterdir()) == [
            "Info.cfg", f"{name}_frame01.nii.gz", f"{name}_frame01_gt.nii.gz",
            f"{name}_frame{es:02d}.nii.gz", f"{name}_frame{es:02d}_gt.nii.gz"]
    assert len(es_frames) > 1  # the ES frame varies between patients


@pytest.mark.parametrize("n_patients", [5, 12, 23])
def test_groups_come_in_contiguous_blocks_covering_all(tmp_path: Path, n_patients: int) -> None:
    generate_synthetic_acdc(tmp_path, n_patients=n_patients, shape=(16, 16, 1))
    groups = [INFO_CFG.fullmatch(p.read_text()).group(2)
              for p in sorted((tmp_path / "training").glob("patient*/Info.cfg"))]
    assert [g for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]] == list(GROUPS)
    counts = Counter(groups).values()
    assert max(counts) - min(counts) <= 1


def test_labels_form_the_expected_anatomy(synthetic: Path) -> None:
    for folder in sorted((synthetic / "training").iterdir()):
        ed_label, es_label = (_load(p) for p in sorted(folder.glob("*_gt.nii.gz")))
        assert ed_label.dtype == np.uint8
        assert set(np.unique(ed_label)) == {0, 1, 2, 3}
        # The LV cavity is enclosed by myocardium: growing it in-plane never reaches background or RV.
        ring = binary_dilation(ed_label == 3, structure=np.ones((3, 3, 1))) & (ed_label != 3)
        assert set(np.unique(ed_label[ring])) == {2}
        # The RV is attached to the myocardium.
        assert (binary_dilation(ed_label == 1, structure=np.ones((3, 3, 1))) & (ed_label == 2)).any()
        # Systole: smaller cavity, thicker wall. Towards the apex: smaller heart.
        assert (es_label == 3).sum() < (ed_label == 3).sum()
        assert (es_label == 2).sum() > (ed_label == 2).sum()
        lv_per_slice = (ed_label == 3).sum(axis=(0, 1))
        assert lv_per_slice[0] > lv_per_slice[lv_per_slice > 0][-1]


def test_image_intensities_differ_per_structure(synthetic: Path) -> None:
    folder = synthetic / "training" / "patient001"
    image, label = _load(folder / "patient001_frame01.nii.gz"), _load(folder / "patient001_frame01_gt.nii.gz")
    assert image.dtype == np.float32 and np.isfinite(image).all()
    means = {value: image[label == value].mean() for value in range(4)}
    assert means[3] > means[2] and means[1] > means[2]  # bright blood pools, dark myocardium
    noise = image[label == 3].std() / means[3]
    assert 0.02 < noise < 0.5  # noisy but learnable


def test_header_geometry_mimics_acdc(tmp_path: Path) -> None:
    import SimpleITK as sitk

    generate_synthetic_acdc(tmp_path, n_patients=1, shape=(40, 36, 5), spacing=(1.25, 1.4, 9.0))
    for path in (tmp_path / "training" / "patient001").glob("*.nii.gz"):
        nifti = nib.load(path)
        assert nifti.shape == (40, 36, 5)
        assert np.allclose(nifti.header.get_zooms(), (1.25, 1.4, 9.0))
        assert nifti.header["sform_code"] == 2 and nifti.header["qform_code"] == 0
        image = sitk.ReadImage(str(path))  # what nnU-Net's default reader sees
        assert np.allclose(image.GetSpacing(), (1.25, 1.4, 9.0))
        assert np.allclose(image.GetDirection(), np.eye(3).ravel())
        assert np.allclose(image.GetOrigin(), 0.0)


def test_deterministic_per_seed_and_patient(tmp_path: Path) -> None:
    first = _digests(generate_synthetic_acdc(tmp_path / "a", n_patients=6, seed=7, shape=(32, 32, 3)))
    again = _digests(generate_synthetic_acdc(tmp_path / "b", n_patients=6, seed=7, shape=(32, 32, 3)))
    other = _digests(generate_synthetic_acdc(tmp_path / "c", n_patients=6, seed=8, shape=(32, 32, 3)))
    assert first == again
    assert first != other
    numbered = generate_synthetic_acdc(tmp_path / "d", n_patients=2, shape=(32, 32, 3), first_patient_id=41)
    assert sorted(p.name for p in (numbered / "training").iterdir()) == ["patient041", "patient042"]


def test_fast_and_leaves_no_temp_files(tmp_path: Path) -> None:
    start = time.perf_counter()
    generate_synthetic_acdc(tmp_path, n_patients=12)
    assert time.perf_counter() - start < 10
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


@pytest.mark.parametrize("kwargs", [{"n_patients": 0}, {"shape": (8, 8, 4)}, {"spacing": (1.0, 0.0, 8.0)},
                                    {"first_patient_id": 999, "n_patients": 2}])
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate_synthetic_acdc(tmp_path, **kwargs)

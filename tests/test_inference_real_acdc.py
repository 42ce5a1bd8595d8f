"""Real ACDC patients (Bernard et al., IEEE TMI 2018) through ``predict`` and ``index-agreement``.

The model is the session's tiny RD-ViT trained for a few iterations on *synthetic* data, so its
segmentations and indices are meaningless; what is checked is the plumbing on real files: ACDC's
headers (an sform without the spacing) round-trip exactly, inputs stay untouched, ground-truth indices are
the voxel counts of the ``_gt`` files, and every output is there.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from inference_support import assert_same_geometry, files_under, run_cli, sha256

pytestmark = pytest.mark.usefixtures("inference_env")

PATIENTS = ("patient001", "patient062")  # a DCM and a NOR patient


@pytest.mark.slow
def test_real_patients_through_predict_and_agreement(real_acdc, tiny_trained_model, tmp_path, capsys) -> None:
    folders = [real_acdc / "training" / name for name in PATIENTS]
    before = {p: sha256(p) for folder in folders for p in files_under(folder)}
    code, stdout, _ = run_cli(capsys, "predict", "-i", *folders, "-o", tmp_path / "pred", "-m", tiny_trained_model,
                              "--disable_tta", "--disable_progress_bar")
    assert code == 0
    assert {p: sha256(p) for p in before} == before
    for folder in folders:
        record = json.loads((tmp_path / "pred" / folder.name / "cardiac_indices.json").read_text())
        for phase, name in record["segmentations"].items():
            assert_same_geometry(tmp_path / "pred" / folder.name / name, folder / name)
        assert (tmp_path / "pred" / folder.name / "report.png").is_file()
        assert f"{folder.name} (ED frame {record['frames']['ED']}, ES frame {record['frames']['ES']}):" in stdout

    code, stdout, _ = run_cli(capsys, "index-agreement", tmp_path / "pred", *folders, "-o", tmp_path / "agree")
    assert code == 0 and "2 patient(s) compared" in stdout
    report = json.loads((tmp_path / "agree" / "agreement.json").read_text())
    for case in report["cases"]:
        folder = real_acdc / "training" / case["patient"]
        info = dict(line.split(": ") for line in (folder / "Info.cfg").read_text().splitlines() if ": " in line)
        ed = nib.load(folder / f"{case['patient']}_frame{int(info['ED']):02d}_gt.nii.gz")
        labels = np.asarray(ed.dataobj)
        voxel_ml = float(np.prod(ed.header.get_zooms()[:3])) / 1000
        assert case["LV_EDV_ml_ground_truth"] == pytest.approx((labels == 3).sum() * voxel_ml)
        assert case["MYO_mass_ED_g_ground_truth"] == pytest.approx((labels == 2).sum() * voxel_ml * 1.05)
        assert 50 < case["LV_EDV_ml_ground_truth"] < 500  # plausible human LV volumes: the spacing was read right

"""``nnunet-rdvit index-agreement``: ground-truth indices from label files, statistics, outputs, problems."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from inference_support import affine_from, files_under, run_cli, save_nifti, sha256
from nnunet_rdvit.inference.cardiac_indices import INDICES

pytestmark = pytest.mark.usefixtures("inference_env")

SPACING = (1.5, 1.25, 10.0)
VOXEL_ML = 1.5 * 1.25 * 10.0 / 1000


def box_patient(root, name: str, lv_ed: int, lv_es: int, ed: int = 1, es: int = 9) -> dict:
    """A ground-truth patient whose labels are boxes: LV ``lv`` voxels wide (x) × 10 × 4 slices, RV and MYO fixed."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 170.0\nNbFrame: 20\nWeight: 70.0\n")
    volumes = {}
    for phase, frame, lv in (("ED", ed, lv_ed), ("ES", es, lv_es)):
        labels = np.zeros((40, 30, 6), dtype=np.uint8)
        labels[0:lv, 0:10, 1:5] = 3
        labels[30:40, 0:10, 1:4] = 1  # RV 10*10*3 = 300 voxels at both phases
        labels[0:20, 20:25, 1:5] = 2  # MYO 20*5*4 = 400 voxels
        save_nifti(folder / f"{name}_frame{frame:02d}_gt.nii.gz", labels, affine_from(SPACING))
        save_nifti(folder / f"{name}_frame{frame:02d}.nii.gz", labels.astype(np.float32), affine_from(SPACING))
        volumes[phase] = {"LV": lv * 10 * 4 * VOXEL_ML, "RV": 300 * VOXEL_ML, "MYO": 400 * VOXEL_ML}
    return volumes


def fake_prediction(root, name: str, indices: dict, ed: int = 1, es: int = 9) -> None:
    """What predict writes for a patient whose images have the grid of :func:`box_patient`."""
    (root / name).mkdir(parents=True)
    segmentations = {phase: f"{name}_frame{frame:02d}.nii.gz" for phase, frame in (("ED", ed), ("ES", es))}
    (root / name / "cardiac_indices.json").write_text(json.dumps(
        {"patient": name, "frames": {"ED": ed, "ES": es}, "segmentations": segmentations, "indices": indices}))
    for segmentation in segmentations.values():
        (root / name / segmentation.replace(".nii.gz", ".json")).write_text(json.dumps(
            {"segmentation": segmentation, "shape": [40, 30, 6], "spacing_mm": list(SPACING)}))


def test_ground_truth_indices_come_from_the_label_boxes(tmp_path, capsys) -> None:
    truth_root, predicted_root = tmp_path / "gt", tmp_path / "pred"
    offsets = {"patient001": 4.0, "patient002": -2.0, "patient003": 7.0}
    expected_lv_edv = {}
    for number, (name, offset) in enumerate(offsets.items()):
        volumes = box_patient(truth_root, name, lv_ed=12 + 4 * number, lv_es=6 + number)
        expected_lv_edv[name] = volumes["ED"]["LV"]
        lv_ef = 100 * (volumes["ED"]["LV"] - volumes["ES"]["LV"]) / volumes["ED"]["LV"]
        truth = {"LV_EDV_ml": volumes["ED"]["LV"], "LV_ESV_ml": volumes["ES"]["LV"],
                 "LV_SV_ml": volumes["ED"]["LV"] - volumes["ES"]["LV"], "LV_EF_percent": lv_ef,
                 "RV_EDV_ml": 300 * VOXEL_ML, "RV_ESV_ml": 300 * VOXEL_ML, "RV_SV_ml": 0.0, "RV_EF_percent": 0.0,
                 "MYO_mass_ED_g": 400 * VOXEL_ML * 1.05}
        fake_prediction(predicted_root, name, {k: v + offset for k, v in truth.items()})
    box_patient(truth_root, "patient004", 10, 5)  # ground truth only
    fake_prediction(predicted_root, "patient777", {k: 1.0 for k in INDICES})  # prediction only
    inputs = {p: sha256(p) for p in files_under(truth_root)}

    code, stdout, _ = run_cli(capsys, "index-agreement", predicted_root, truth_root, "-o", tmp_path / "agree")
    assert code == 0
    assert {p: sha256(p) for p in inputs} == inputs
    report = json.loads((tmp_path / "agree" / "agreement.json").read_text())
    assert report["n_patients"] == 3
    assert report["unmatched"] == {"no_ground_truth": ["patient777"], "no_prediction": ["patient004"]}
    for case in report["cases"]:
        assert case["LV_EDV_ml_ground_truth"] == pytest.approx(expected_lv_edv[case["patient"]])
    differences = np.array(list(offsets.values()))
    for index in INDICES:
        stats = report["statistics"][index]
        assert stats["n"] == 3 and stats["bias"] == pytest.approx(differences.mean())
        assert stats["sd"] == pytest.approx(differences.std(ddof=1))
        assert stats["loa_upper"] == pytest.approx(differences.mean() + 1.96 * differences.std(ddof=1))
    assert report["statistics"]["RV_EDV_ml"]["pearson_r"] is None  # constant ground truth: undefined
    assert report["statistics"]["LV_EDV_ml"]["pearson_r"] is not None
    assert (tmp_path / "agree" / "bland_altman.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "agree" / "agreement.csv").read_text().startswith(
        "index,unit,n,pearson_r,bias,sd,loa_lower,loa_upper,mean_absolute_error\nLV_EDV_ml,mL,3,")
    assert "no ground truth: patient777" in stdout and "no prediction: patient004" in stdout


def test_frame_mismatch_and_bad_ground_truth_fail_those_patients(tmp_path, capsys) -> None:
    truth_root, predicted_root = tmp_path / "gt", tmp_path / "pred"
    for name in ("patient001", "patient002", "patient003"):
        box_patient(truth_root, name, 12, 6)
    fake_prediction(predicted_root, "patient001", {k: 1.0 for k in INDICES})
    fake_prediction(predicted_root, "patient002", {k: 1.0 for k in INDICES}, es=8)
    fake_prediction(predicted_root, "patient003", {k: 1.0 for k in INDICES})
    label = truth_root / "patient003" / "patient003_frame09_gt.nii.gz"
    data = np.asarray(nib.load(label).dataobj).copy()
    data[0, 0, 0] = 7
    save_nifti(label, data, affine_from(SPACING))
    code, _, err = run_cli(capsys, "index-agreement", predicted_root, truth_root, "-o", tmp_path / "agree")
    assert code == 2
    assert err.strip().endswith("error: 2 patient(s) could not be compared — patient002: the prediction used frames "
                                "ED 1 / ES 8, Info.cfg says ED 1 / ES 9; patient003: patient003_frame09_gt.nii.gz "
                                "has label values [7] outside [0, 1, 2, 3]")
    assert json.loads((tmp_path / "agree" / "agreement.json").read_text())["n_patients"] == 1


def test_nothing_to_compare(tmp_path, capsys) -> None:
    (tmp_path / "pred").mkdir()
    box_patient(tmp_path / "gt", "patient001", 12, 6)
    code, _, err = run_cli(capsys, "index-agreement", tmp_path / "pred", tmp_path / "gt", "-o", tmp_path / "agree")
    assert code == 2 and not (tmp_path / "agree").exists()
    assert err.strip().endswith(f"{tmp_path / 'pred'} has no <patient>/cardiac_indices.json; run `nnunet-rdvit "
                                f"predict` on patient folders (with Info.cfg, or --ed/--es) and pass its output folder")


def test_predict_then_compare_on_the_synthetic_test_patients(tiny_workspace, tiny_trained_model, tmp_path,
                                                             capsys) -> None:
    testing = tiny_workspace.acdc_raw / "testing"
    code, _, _ = run_cli(capsys, "predict", "-i", testing, "-o", tmp_path / "pred", "-m", tiny_trained_model,
                         "--disable_progress_bar", "--disable_tta")
    assert code == 0
    code, stdout, _ = run_cli(capsys, "index-agreement", tmp_path / "pred", testing, "-o", tmp_path / "agree")
    assert code == 0 and "2 patient(s) compared" in stdout
    report = json.loads((tmp_path / "agree" / "agreement.json").read_text())
    for case in report["cases"]:
        folder = testing / case["patient"]
        info = dict(line.split(": ") for line in (folder / "Info.cfg").read_text().splitlines())
        label = nib.load(folder / f"{case['patient']}_frame{int(info['ED']):02d}_gt.nii.gz")
        voxel_ml = float(np.prod(label.header.get_zooms())) / 1000
        assert case["LV_EDV_ml_ground_truth"] == pytest.approx((np.asarray(label.dataobj) == 3).sum() * voxel_ml)


def _relabel(label, shape: tuple[int, ...] | None = None, spacing: tuple[float, ...] = SPACING) -> None:
    data = np.asarray(nib.load(label).dataobj)
    save_nifti(label, data[tuple(slice(0, n) for n in shape)] if shape else data, affine_from(spacing))


def test_ground_truth_on_another_grid_fails_those_patients(tmp_path, capsys) -> None:
    truth_root, predicted_root = tmp_path / "gt", tmp_path / "pred"
    for name in ("patient001", "patient002", "patient003"):
        box_patient(truth_root, name, 12, 6)
        fake_prediction(predicted_root, name, {k: 1.0 for k in INDICES})
    _relabel(truth_root / "patient002" / "patient002_frame01_gt.nii.gz", shape=(20, 30, 6))
    _relabel(truth_root / "patient003" / "patient003_frame09_gt.nii.gz", spacing=(1.5, 1.25, 5.0))
    code, _, err = run_cli(capsys, "index-agreement", predicted_root, truth_root, "-o", tmp_path / "agree")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "nnunet-rdvit index-agreement: error: 2 patient(s) could not be compared — patient002: "
        "patient002_frame01_gt.nii.gz has shape 20×30×6, the image the prediction was made on 40×30×6: the ground "
        "truth belongs to another image or was resampled; pass the labels drawn on the predicted image; patient003: "
        "patient003_frame09_gt.nii.gz has voxel spacing 1.5×1.25×5 mm, the image the prediction was made on "
        "1.5×1.25×10 mm: volumes would not be comparable; pass the labels drawn on the predicted image")
    report = json.loads((tmp_path / "agree" / "agreement.json").read_text())
    assert report["n_patients"] == 1 and [f["patient"] for f in report["failures"]] == ["patient002", "patient003"]


def _agreement_refused(capsys, args: list, message: str, inputs: list) -> None:
    before = {p: sha256(p) for folder in inputs for p in files_under(folder)}
    code, _, err = run_cli(capsys, "index-agreement", *args)
    assert code == 2 and err.strip().splitlines() == [f"nnunet-rdvit index-agreement: error: {message}"]
    assert {p: sha256(p) for folder in inputs for p in files_under(folder)} == before


def test_agreement_paths_of_the_wrong_kind(tmp_path, capsys) -> None:
    box_patient(tmp_path / "gt", "patient001", 12, 6)
    fake_prediction(tmp_path / "pred", "patient001", {k: 1.0 for k in INDICES})
    a_file = tmp_path / "gt" / "patient001" / "Info.cfg"
    _agreement_refused(capsys, [a_file, tmp_path / "gt", "-o", tmp_path / "agree"], f"prediction folder {a_file} is "
                       f"a file, not a folder; pass a folder", [tmp_path])
    _agreement_refused(capsys, [tmp_path / "pred", a_file, "-o", tmp_path / "agree"], f"ground-truth folder {a_file} "
                       f"is a file, not a folder; pass a folder", [tmp_path])
    assert not (tmp_path / "agree").exists()


@pytest.mark.parametrize("where", ["the predictions folder", "inside the ground-truth folder", "under a file"])
def test_agreement_output_in_an_input_or_impossible(where, tmp_path, capsys) -> None:
    truth_root, predicted_root = tmp_path / "gt", tmp_path / "pred"
    box_patient(truth_root, "patient001", 12, 6)
    fake_prediction(predicted_root, "patient001", {k: 1.0 for k in INDICES})
    out, message = {
        "the predictions folder": (predicted_root, f"the output folder {predicted_root} is the input folder "
                                                   f"{predicted_root}; pass a -o folder outside every input (outputs "
                                                   f"are never written into inputs)"),
        "inside the ground-truth folder": (truth_root / "agree", f"the output folder {truth_root / 'agree'} is inside "
                                                                 f"the input folder {truth_root}; pass a -o folder "
                                                                 f"outside every input (outputs are never written "
                                                                 f"into inputs)"),
        "under a file": (tmp_path / "notes.txt" / "agree", f"cannot create the output folder "
                                                          f"{tmp_path / 'notes.txt' / 'agree'}: {tmp_path / 'notes.txt'} "
                                                          f"is a file, not a folder; pass another -o"),
    }[where]
    (tmp_path / "notes.txt").write_text("in the way")
    _agreement_refused(capsys, [predicted_root, truth_root, "-o", out], message, [tmp_path])
    assert not (truth_root / "agree").exists()


@pytest.mark.parametrize("content, problem", [
    ("[1, 2]", "TypeError: list indices must be integers or slices, not str"),
    ('{"patient": "patient001", "indices": {}}', "KeyError: 'frames'"),
    ('{"patient": "patient001", "frames": {"ED": 1, "ES": 9}, "indices": {"LV_EDV_ml": "big"}}', "KeyError: 'LV_ESV_ml'"),
    ("{not json", "JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
])
def test_a_damaged_prediction_record_is_named(content, problem, tmp_path, capsys) -> None:
    box_patient(tmp_path / "gt", "patient001", 12, 6)
    fake_prediction(tmp_path / "pred", "patient001", {k: 1.0 for k in INDICES})
    record = tmp_path / "pred" / "patient001" / "cardiac_indices.json"
    record.write_text(content)
    _agreement_refused(capsys, [tmp_path / "pred", tmp_path / "gt", "-o", tmp_path / "agree"], f"{record} is not a "
                       f"cardiac_indices.json written by predict ({problem}); run predict again into that folder, or "
                       f"remove the file", [tmp_path])
    assert not (tmp_path / "agree").exists()

"""``nnunet-rdvit predict`` with a tiny RD-ViT trained by the stock command: outputs, geometry, indices, batches."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from inference_support import (affine_from, assert_same_geometry, files_under, run_cli, save_nifti, sha256, synthetic_image)
from nnunet_rdvit.inference import PredictSettings, predict
from nnunet_rdvit.inference.cardiac_indices import cardiac_indices, structure_volumes_ml

pytestmark = pytest.mark.usefixtures("inference_env")


def test_patient_folder_gives_aligned_segmentations_indices_and_report(tiny_workspace, tiny_trained_model,
                                                                       tmp_path, capsys) -> None:
    patient = tiny_workspace.acdc_raw / "testing" / "patient101"
    before = {p: sha256(p) for p in files_under(patient)}
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "predict", "-i", patient, "-o", out, "-m", tiny_trained_model,
                              "--disable_progress_bar")
    assert code == 0
    assert {p: sha256(p) for p in files_under(patient)} == before  # inputs untouched
    info = dict(line.split(": ") for line in (patient / "Info.cfg").read_text().splitlines())
    ed, es = int(info["ED"]), int(info["ES"])
    folder = out / "patient101"
    names = {p.name for p in folder.iterdir()}
    assert names == {f"patient101_frame{ed:02d}.nii.gz", f"patient101_frame{ed:02d}.json",
                     f"patient101_frame{es:02d}.nii.gz", f"patient101_frame{es:02d}.json",
                     "cardiac_indices.json", "cardiac_indices.csv", "report.png"}
    assert {p.name for p in out.iterdir()} == {"patient101", "summary.json", "cardiac_indices.csv"}

    volumes = {}
    for phase, frame in (("ED", ed), ("ES", es)):
        segmentation = folder / f"patient101_frame{frame:02d}.nii.gz"
        assert_same_geometry(segmentation, patient / f"patient101_frame{frame:02d}.nii.gz")
        image = nib.load(segmentation)
        labels = np.asarray(image.dataobj)
        assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
        sidecar = json.loads(segmentation.with_suffix("").with_suffix(".json").read_text())
        assert sidecar["labels"] == {"0": "background", "1": "RV", "2": "MYO", "3": "LV"}
        assert sidecar["phase"] == phase and sidecar["model"]["folds"] == [0]
        assert sidecar["source_sha256"] == before[patient / f"patient101_frame{frame:02d}.nii.gz"]
        volumes[phase] = structure_volumes_ml(labels, float(np.prod(image.header.get_zooms())) / 1000)
        assert sidecar["volumes_ml"] == pytest.approx(volumes[phase])

    record = json.loads((folder / "cardiac_indices.json").read_text())
    assert record["frames"] == {"ED": ed, "ES": es} and record["frames_from"] == "Info.cfg"
    expected = cardiac_indices(volumes["ED"], volumes["ES"])
    assert record["indices"] == pytest.approx({k: v for k, v in expected.items()})
    assert f"LV EDV: {expected['LV_EDV_ml']:.1f} mL" in stdout
    header = (out / "cardiac_indices.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["patient", "ed_frame", "es_frame"] and "MYO_mass_ED_g" in header and "ED_LV_ml" in header
    assert (folder / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_ok"] == 2 and summary["n_failed"] == 0


@pytest.mark.parametrize("header", ["oblique_anisotropic", "non_ras_permuted", "qform_only", "acdc_unscaled_sform"])
def test_geometry_round_trip(tiny_workspace, tiny_trained_model, tmp_path, header) -> None:
    data = synthetic_image(tiny_workspace)
    if header == "oblique_anisotropic":
        path = save_nifti(tmp_path / "in" / "case.nii.gz", data,
                          affine_from((1.3, 1.9, 9.5), rotation_deg=(14, -22, 37), origin=(12.5, -40.0, 71.25)))
    elif header == "non_ras_permuted":
        path = save_nifti(tmp_path / "in" / "case.nii.gz", data,
                          affine_from((1.6, 1.6, 8.0), flips=(-1, 1, -1), permutation=(2, 0, 1), origin=(5, 6, 7)))
    elif header == "qform_only":
        path = save_nifti(tmp_path / "in" / "case.nii.gz", data, affine_from((1.6, 1.6, 8.0), (0, 0, 90)),
                          sform_code=0)
    else:  # ACDC's own files: an sform without the spacing, the spacing only in pixdim
        path = save_nifti(tmp_path / "in" / "case.nii.gz", data, np.diag([-1.0, -1.0, 1.0, 1.0]), sform_code=2,
                          qform_code=0, zooms=(1.6, 1.6, 8.0))
    before = sha256(path)
    result = predict(PredictSettings([path], tmp_path / "out", tiny_trained_model, progress=False))
    assert not result.failures and sha256(path) == before
    assert_same_geometry(tmp_path / "out" / "case.nii.gz", path)


def test_direction_and_origin_do_not_change_the_labels(tiny_workspace, tiny_trained_model, tmp_path) -> None:
    """Same voxels and spacing under another orientation -> the same label array: no axis was swapped or flipped."""
    data = synthetic_image(tiny_workspace)
    plain = save_nifti(tmp_path / "a" / "case.nii.gz", data, affine_from((1.6, 1.6, 8.0)))
    turned = save_nifti(tmp_path / "b" / "case.nii.gz", data,
                        affine_from((1.6, 1.6, 8.0), rotation_deg=(30, 0, 125), flips=(-1, 1, 1), origin=(3, 4, 5)))
    for source, out in ((plain, "out_a"), (turned, "out_b")):
        predict(PredictSettings([source], tmp_path / out, tiny_trained_model, progress=False))
    a = np.asarray(nib.load(tmp_path / "out_a" / "case.nii.gz").dataobj)
    b = np.asarray(nib.load(tmp_path / "out_b" / "case.nii.gz").dataobj)
    assert np.array_equal(a, b) and (a > 0).any()


def test_4d_cine_with_ed_and_es_flags(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    frames = [synthetic_image(tiny_workspace, "patient102", 1), synthetic_image(tiny_workspace, "patient102", 1) * 0.9]
    affine = affine_from((1.6, 1.6, 8.0), rotation_deg=(0, 10, 0))
    cine = save_nifti(tmp_path / "in" / "cine_4d.nii.gz", np.stack(frames, axis=-1), affine)
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "predict", "-i", cine, "-o", out, "-m", tiny_trained_model, "--ed", 1,
                              "--es", 2, "--disable_progress_bar")
    assert code == 0
    record = json.loads((out / "cine_4d" / "cardiac_indices.json").read_text())
    assert record["frames"] == {"ED": 1, "ES": 2} and record["frames_from"] == "--ed/--es"
    for frame in (1, 2):
        segmentation = nib.load(out / "cine_4d" / f"cine_4d_frame{frame:02d}.nii.gz")
        assert segmentation.shape == frames[0].shape and np.allclose(segmentation.affine, affine, atol=1e-6)
    assert "cine_4d (ED frame 1, ES frame 2):" in stdout


def test_batch_reports_a_bad_case_and_writes_the_others(tiny_workspace, tiny_trained_model, tmp_path,
                                                         capsys) -> None:
    folder = tmp_path / "in"
    data = synthetic_image(tiny_workspace)
    save_nifti(folder / "good_a.nii.gz", data, affine_from((1.6, 1.6, 8.0)))
    bad = folder / "bad.nii.gz"
    bad.write_bytes((folder / "good_a.nii.gz").read_bytes()[:300])
    save_nifti(folder / "good_b.nii.gz", data[::-1], affine_from((1.6, 1.6, 8.0)))
    save_nifti(folder / "good_b_gt.nii.gz", np.zeros(data.shape, np.uint8), affine_from((1.6, 1.6, 8.0)))
    patient = tiny_workspace.acdc_raw / "testing" / "patient102"
    broken_patient = tmp_path / "patient999"
    broken_patient.mkdir()
    (broken_patient / "Info.cfg").write_text("ED: 1\nGroup: NOR\n")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "predict", "-i", folder, patient, broken_patient, "-o", out, "-m",
                           tiny_trained_model, "--disable_progress_bar")
    assert code == 2
    assert ("nnunet-rdvit predict: error: 2 of 6 case(s) failed — patient999: Info.cfg: ES is missing; bad: "
            "bad.nii.gz is truncated (the gzip stream ends early); copy or export the file again; all listed in "
            f"{out / 'summary.json'}") in err
    assert {p.name for p in out.glob("*.nii.gz")} == {"good_a.nii.gz", "good_b.nii.gz"}  # no _gt, no bad
    assert len(list((out / "patient102").glob("*.nii.gz"))) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_ok"] == 4 and summary["n_failed"] == 2
    assert {c["name"] for c in summary["cases"] if not c["ok"]} == {"bad", "patient999"}


def test_labels_equal_nnunets_own_reader_and_prediction(tiny_workspace, tiny_trained_model, tmp_path) -> None:
    """Our array and spacing in, nnU-Net's result out: the same labels as nnU-Net's reader + predictor give."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from nnunet_rdvit.inference.model import load_model
    from nnunet_rdvit.inference.nifti_io import read_image
    from nnunet_rdvit.inference.segmentation import from_nnunet_array, segment

    path = save_nifti(tmp_path / "case.nii.gz", synthetic_image(tiny_workspace),
                      affine_from((1.3, 1.9, 9.5), rotation_deg=(14, -22, 37), origin=(12.5, -40.0, 71.25)))
    model = load_model(tiny_trained_model, device="cpu")
    ours = segment(model, read_image(path)).labels
    image, properties = SimpleITKIO().read_images([str(path)])
    theirs = model.predictor.predict_single_npy_array(image, properties)
    assert np.array_equal(ours, from_nnunet_array(theirs)) and (ours > 0).any()


def test_runs_into_one_folder_merge_their_batch_files(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    """Two runs with different inputs into one folder: the folder-level files list both runs' patients; a run
    that redoes a patient replaces its rows; a run with another model is refused before it segments."""
    testing, out = tiny_workspace.acdc_raw / "testing", tmp_path / "out"
    for patient in ("patient101", "patient102", "patient101"):
        code, _, _ = run_cli(capsys, "predict", "-i", testing / patient, "-o", out, "-m", tiny_trained_model,
                             "--disable_progress_bar", "--disable_tta")
        assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(case["name"].split("/")[0] for case in summary["cases"]) == ["patient101"] * 2 + ["patient102"] * 2
    assert summary["n_ok"] == 4 and summary["n_failed"] == 0
    rows = (out / "cardiac_indices.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["patient101", "patient102"]
    assert rows[1] == (out / "patient101" / "cardiac_indices.csv").read_text().splitlines()[1]

    other = tmp_path / "Dataset903_Other" / tiny_trained_model.name  # the same trainer for another dataset
    other.mkdir(parents=True)
    for name in ("dataset.json", "plans.json", "fold_0"):
        (other / name).symlink_to(tiny_trained_model / name)
    before = {p: sha256(p) for p in files_under(out)}
    code, _, err = run_cli(capsys, "predict", "-i", testing / "patient102", "-o", out, "-m", other,
                           "--disable_progress_bar")
    assert code == 2 and err.strip().splitlines() == [
        f"nnunet-rdvit predict: error: {out} holds the outputs of another model (RDViTTrainer_tiny 2d folds 0 "
        f"checkpoint_final.pth from {tiny_trained_model}; this run: RDViTTrainer_tiny 2d folds 0 checkpoint_final.pth "
        f"from {other}); one output folder holds one model's outputs, so pass a new output folder"]
    assert {p: sha256(p) for p in files_under(out)} == before

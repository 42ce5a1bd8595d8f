"""Every bad input to ``predict``: one clear message, exit status 2, no output file, the input untouched."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest

from inference_support import affine_from, files_under, run_cli, save_nifti, sha256, synthetic_image

pytestmark = pytest.mark.usefixtures("inference_env")

AFFINE = affine_from((1.6, 1.6, 8.0))


def _corrupt(tmp: Path, data: np.ndarray) -> Path:
    good = save_nifti(tmp / "good.nii.gz", data, AFFINE).read_bytes()
    path = tmp / "case.nii.gz"
    path.write_bytes(good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:])  # a damaged CRC
    return path


def _truncated_gz(tmp: Path, data: np.ndarray) -> Path:
    good = save_nifti(tmp / "good.nii.gz", data, AFFINE).read_bytes()
    path = tmp / "case.nii.gz"
    path.write_bytes(good[: len(good) // 2])
    return path


def _truncated_nii(tmp: Path, data: np.ndarray) -> Path:
    path = tmp / "case.nii"
    path.write_bytes(nib.Nifti1Image(data, AFFINE).to_bytes()[:5000])
    return path


def _text_file(tmp: Path, data: np.ndarray) -> Path:
    path = tmp / "notes.txt"
    path.write_text("not an image\n")
    return path


def _png_named_nifti(tmp: Path, data: np.ndarray) -> Path:
    path = tmp / "fake.nii.gz"
    path.write_bytes(gzip.compress(b"\x89PNG\r\n\x1a\n" + bytes(600), mtime=0))
    return path


def _two_d(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "flat.nii.gz", data[:, :, 2], AFFINE)


def _four_d(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "cine.nii.gz", np.stack([data, data], axis=-1), AFFINE)


def _nan_inf(tmp: Path, data: np.ndarray) -> Path:
    data = data.copy()
    data[0, 0, :3] = np.nan
    data[1, 1, :2] = np.inf
    return save_nifti(tmp / "nan.nii.gz", data, AFFINE)


def _zero_spacing(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "zero.nii.gz", data, AFFINE, zooms=(1.6, 0.0, 8.0))


def _missing_spacing(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "nospacing.nii.gz", data, np.eye(4), sform_code=0, qform_code=0, zooms=(0.0, 0.0, 0.0))


def _vector_voxels(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "rgb.nii.gz", np.stack([data] * 3, axis=-1)[:, :, :, None, :], AFFINE)


def _huge_spacing(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "huge.nii.gz", data, AFFINE, zooms=(1.6, 1.6, 1e30))


def _micro_spacing(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "micro.nii.gz", data, AFFINE, zooms=(1e-6, 1.6, 8.0))


def _complex(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "kspace.nii.gz", (data + 1j * data).astype(np.complex64), AFFINE)


def _label_map(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "case.nii.gz", (data > np.median(data)).astype(np.uint8) * 3, AFFINE)


def _constant(tmp: Path, data: np.ndarray) -> Path:
    return save_nifti(tmp / "blank.nii.gz", np.zeros_like(data), AFFINE)


BAD_VOLUMES: dict[str, tuple[Callable[[Path, np.ndarray], Path], list[str], str | re.Pattern]] = {
    "corrupt gzip": (_corrupt, [],
                     "case.nii.gz is corrupt (its gzip checksum does not match the data); copy or export the file "
                     "again"),
    "truncated gzip": (_truncated_gz, [],
                       "case.nii.gz is truncated (the gzip stream ends early); copy or export the file again"),
    "truncated nii": (_truncated_nii, [],
                      "case.nii is truncated: its header announces 55648 bytes, the file holds 5000; copy or export "
                      "the file again"),
    "not a NIfTI name": (_text_file, [], "notes.txt is not a NIfTI file (expected a .nii or .nii.gz name)"),
    "not NIfTI content": (_png_named_nifti, [],
                          "fake.nii.gz is not a NIfTI file (no NIfTI-1 or NIfTI-2 header at the start)"),
    "2D": (_two_d, [], "flat.nii.gz is 2D (shape 48×48); the model segments 3D short-axis stacks: save it as a 3D "
                       "volume (a single slice is shape 48×48×1)"),
    "4D without frames": (_four_d, [],
                          "cine.nii.gz is 4D (shape 48×48×6×2, 2 frames); choose the frames with --ed N --es M "
                          "(1-based frame numbers, as in Info.cfg) to segment end-diastole and end-systole, or pass "
                          "3D volumes"),
    "NaN and Inf": (_nan_inf, [], "nan.nii.gz contains 3 NaN and 2 infinite voxel(s); replace them (e.g. by 0) "
                                  "before segmenting"),
    "zero spacing": (_zero_spacing, [],
                     "zero.nii.gz has an invalid voxel spacing (pixdim = 1.6, 0, 8); volumes and cardiac indices "
                     "depend on it, so set the real spacing in mm in the header and run again"),
    "missing spacing": (_missing_spacing, [],
                        "nospacing.nii.gz has no voxel spacing (pixdim = 0, 0, 0); volumes and cardiac indices "
                        "depend on it, so set the real spacing in mm in the header and run again"),
    "implausibly large spacing": (_huge_spacing, [],
                                  "huge.nii.gz has a voxel spacing of 1.6, 1.6, 1e+30 mm, outside the plausible "
                                  "0.01-100 mm of an MR image (a header in metres or microns, or a damaged one?); "
                                  "volumes and cardiac indices depend on it, so set the real spacing in mm in the "
                                  "header and run again"),
    "implausibly small spacing": (_micro_spacing, [],
                                  re.compile(r".*micro\.nii\.gz has a voxel spacing of 1e-06, 1\.6, 8 mm, outside "
                                             r"the plausible 0\.01-100 mm .*")),
    "complex values": (_complex, [], "kspace.nii.gz holds complex values (complex64); the model segments magnitude "
                                     "images: save the magnitude (abs) as a real-valued volume"),
    "label map as image": (_label_map, [], "case.nii.gz holds only the values 0, 3: it is a label map "
                                           "(segmentation), not an MR image; pass the image it was drawn on"),
    "constant image": (_constant, [], "blank.nii.gz is constant (every voxel is 0): there is no image to segment; "
                                      "check the export"),
    "wrong channel count": (_vector_voxels, [],
                            "rgb.nii.gz has 3 values per voxel (shape 48×48×6×1×3); the model expects 1 channel "
                            "(one cine-MRI intensity per voxel): pass one 3D volume per frame"),
}


def expect_refusal(capsys, args: list, message: str | re.Pattern, out: Path, inputs: list[Path]) -> None:
    before = {p: sha256(p) for path in inputs for p in ([path] if path.is_file() else files_under(path))}
    code, _, err = run_cli(capsys, "predict", *args, "-o", out, "--disable_progress_bar")
    last = err.strip().splitlines()[-1]
    assert code == 2
    if isinstance(message, str):
        assert last == f"nnunet-rdvit predict: error: {message}"
    else:
        assert message.fullmatch(last), last
    assert files_under(out) == [] or not out.exists()
    assert {p: sha256(p) for p in before} == before


@pytest.mark.parametrize("name", list(BAD_VOLUMES))
def test_bad_volume(name, tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    make, flags, message = BAD_VOLUMES[name]
    folder = tmp_path / "in"
    folder.mkdir()
    path = make(folder, synthetic_image(tiny_workspace))
    out = tmp_path / "out"
    expect_refusal(capsys, ["-i", path, "-m", tiny_trained_model, *flags], message, out, [path])
    assert not out.exists()  # created by the run, removed again because nothing was written


def test_4d_frame_out_of_range_fails_that_frame_only(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    cine = _four_d(tmp_path, synthetic_image(tiny_workspace))
    before = sha256(cine)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "predict", "-i", cine, "-m", tiny_trained_model, "-o", out, "--ed", 1, "--es", 5,
                           "--disable_progress_bar")
    assert code == 2 and sha256(cine) == before
    assert err.strip().endswith("error: 1 of 2 case(s) failed — cine/cine_frame05: cine.nii.gz has frames 1..2; "
                                f"frame 5 does not exist; all listed in {out / 'summary.json'}")
    assert sorted(p.name for p in (out / "cine").iterdir()) == ["cine_frame01.json", "cine_frame01.nii.gz"]


def copy_model(model: Path, target: Path, checkpoint: bool = True) -> Path:
    shutil.copytree(model, target, ignore=None if checkpoint else shutil.ignore_patterns("*.pth"))
    return target


def test_model_folder_missing(tiny_workspace, tmp_path, capsys) -> None:
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    expect_refusal(capsys, ["-i", image, "-m", tmp_path / "nowhere"], f"model folder {tmp_path / 'nowhere'} does "
                   f"not exist; pass an existing folder", tmp_path / "out", [image])
    expect_refusal(capsys, ["-i", image, "-m", image], f"model folder {image} is a file, not a folder; pass a folder",
                   tmp_path / "out", [image])


def test_model_folder_without_plans(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    model = copy_model(tiny_trained_model, tmp_path / "model", checkpoint=False)
    (model / "plans.json").unlink()
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    expect_refusal(capsys, ["-i", image, "-m", model], f"{model} is not a trained nnU-Net model folder: plans.json is "
                   f"missing (pass the folder named TRAINER__PLANS__CONFIGURATION inside nnUNet_results/DatasetXXX)",
                   tmp_path / "out", [image])


def test_dataset_results_folder_instead_of_model_folder(tiny_workspace, tiny_trained_model, tmp_path,
                                                        capsys) -> None:
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    parent = tiny_trained_model.parent
    code, _, err = run_cli(capsys, "predict", "-i", image, "-m", parent, "-o", tmp_path / "out",
                           "--disable_progress_bar")
    assert code == 2
    assert f"{parent} is not a trained nnU-Net model folder: dataset.json is missing (it holds model folders: " in err
    assert f"{tiny_trained_model.name}" in err and "pass one of them)" in err


def test_model_folder_without_final_checkpoint(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    model = copy_model(tiny_trained_model, tmp_path / "model", checkpoint=False)
    (model / "fold_0" / "checkpoint_latest.pth").write_bytes(b"weights")
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    expect_refusal(capsys, ["-i", image, "-m", model], f"no trained fold in {model}: no fold_N/checkpoint_final.pth "
                   f"(found checkpoint_latest.pth in fold_0: training unfinished? pass -chk "
                   f"checkpoint_latest.pth to use it)", tmp_path / "out", [image])
    expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model, "-chk", "checkpoint_bset.pth"],
                   f"no trained fold in {tiny_trained_model}: no fold_N/checkpoint_bset.pth (found "
                   f"checkpoint_best.pth, checkpoint_final.pth in fold_0: pass -chk checkpoint_final.pth "
                   f"to use it)",
                   tmp_path / "out", [image])
    expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model, "-chk", "fold_0/checkpoint_final.pth"],
                   "-chk 'fold_0/checkpoint_final.pth' is not a file name: it names the checkpoint file "
                   "inside each fold_N (e.g. checkpoint_best.pth); pass the model folder with -m", tmp_path / "out",
                   [image])
    expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model, "-f", "0", "0"],
                   "fold(s) 0 given more than once; an ensemble takes each fold once", tmp_path / "out", [image])
    expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model, "-f", "0", "3"],
                   f"fold(s) 3 have no checkpoint_final.pth in {tiny_trained_model} (available: 0)",
                   tmp_path / "out", [image])


def test_damaged_checkpoint(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    model = copy_model(tiny_trained_model, tmp_path / "model")
    checkpoint = model / "fold_0" / "checkpoint_final.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    pattern = re.compile(rf"nnunet-rdvit predict: error: cannot load the model from {re.escape(str(model))} "
                         rf"\(\w+: .+\); is a checkpoint damaged or from another model\?")
    expect_refusal(capsys, ["-i", image, "-m", model], pattern, tmp_path / "out", [image, model])


def test_trainer_class_not_found(tiny_workspace, tiny_trained_model, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("nnUNet_extTrainer")
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model], "the model's trainer class RDViTTrainer_tiny "
                   "cannot be found: install the package that defines it, or set nnUNet_extTrainer to the folder "
                   "with its module", tmp_path / "out", [image])


def test_model_with_two_input_channels(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    model = copy_model(tiny_trained_model, tmp_path / "model", checkpoint=False)
    dataset = json.loads((model / "dataset.json").read_text())
    dataset["channel_names"] = {"0": "cineMRI", "1": "T2"}
    (model / "dataset.json").write_text(json.dumps(dataset))
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    expect_refusal(capsys, ["-i", image, "-m", model], f"the model in {model} expects 2 input channels (cineMRI, T2); "
                   f"predict gives it one volume per case (single-channel cine MRI)", tmp_path / "out", [image])


def test_unwritable_output_folder(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model],
                   f"cannot create the output folder {blocker / 'out' / 'deeper'}: {blocker} is a file, not a "
                   f"folder; pass another -o", blocker / "out" / "deeper", [image, blocker])
    expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model],
                   f"the output {blocker} is a file, not a folder; pass a folder for -o", blocker, [image, blocker])


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only folders")
def test_read_only_output_folder(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model],
                       f"cannot write to the output folder {locked} (Permission denied); pass a writable folder "
                       f"for -o", locked, [image])
    finally:
        locked.chmod(0o700)


def test_output_folder_holding_the_inputs(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    image = save_nifti(folder / "case.nii.gz", synthetic_image(tiny_workspace), AFFINE)
    before = sha256(image)
    code, _, err = run_cli(capsys, "predict", "-i", image, "-m", tiny_trained_model, "-o", folder,
                           "--disable_progress_bar")
    assert code == 2 and sha256(image) == before and [p.name for p in folder.iterdir()] == ["case.nii.gz"]
    assert err.strip().endswith(f"the output folder {folder} holds the input case.nii.gz; choose an output folder "
                                f"without inputs (outputs would sit beside, or replace, the originals)")


def test_missing_input_and_empty_folder(tiny_trained_model, tmp_path, capsys) -> None:
    expect_refusal(capsys, ["-i", tmp_path / "nope.nii.gz", "-m", tiny_trained_model],
                   f"input {tmp_path / 'nope.nii.gz'} does not exist", tmp_path / "out", [])
    (tmp_path / "empty").mkdir()
    expect_refusal(capsys, ["-i", tmp_path / "empty", "-m", tiny_trained_model],
                   f"{tmp_path / 'empty'} has no NIfTI files (.nii, .nii.gz) and no patient folders with Info.cfg "
                   f"(searched two levels down); pass image files or patient folders", tmp_path / "out", [])
    expect_refusal(capsys, ["-i", tmp_path / "empty", "-m", tiny_trained_model, "--ed", "1"],
                   "--ed and --es go together: give both frame numbers or neither", tmp_path / "out", [])


# Bad paths are refused before the model is loaded, so these tests pass a model folder that does not exist.

@pytest.fixture
def patients(tmp_path: Path) -> Path:
    """Two small synthetic ACDC patient folders (no model needed)."""
    from nnunet_rdvit.synthetic_acdc import generate_synthetic_acdc

    return generate_synthetic_acdc(tmp_path / "acdc", 2, shape=(16, 16, 4), seed=1) / "training"


def _patient_copy(patients: Path, root: Path, patient: str = "patient001") -> Path:
    return Path(shutil.copytree(patients / patient, root / patient))


def refused_in_place(capsys, args: list, message: str, inputs: list[Path]) -> None:
    """Like :func:`expect_refusal` for an ``-o`` that is itself an input: its files must stay exactly as they were."""
    before = {p: sha256(p) for path in inputs for p in files_under(path)}
    code, _, err = run_cli(capsys, "predict", *args, "--disable_progress_bar")
    assert code == 2 and err.strip().splitlines() == [f"nnunet-rdvit predict: error: {message}"]
    assert {p: sha256(p) for path in inputs for p in files_under(path)} == before


def test_special_files_as_input(tmp_path, capsys) -> None:
    fifo = tmp_path / "scan.nii.gz"
    os.mkfifo(fifo)
    expect_refusal(capsys, ["-i", fifo, "-m", tmp_path / "model"], f"input {fifo} is a FIFO (named pipe), not a "
                   f"file or a folder; pass a regular file or a folder", tmp_path / "out", [])
    expect_refusal(capsys, ["-i", "/dev/null", "-m", tmp_path / "model"], "input /dev/null is a character device, "
                   "not a file or a folder; pass a regular file or a folder", tmp_path / "out", [])
    assert not (tmp_path / "out").exists()


def test_ground_truth_file_given_as_the_image(patients, tmp_path, capsys) -> None:
    label = patients / "patient001" / "patient001_frame01_gt.nii.gz"
    expect_refusal(capsys, ["-i", label, "-m", tmp_path / "model"], f"{label} is a ground-truth label file (its "
                   f"name ends in _gt), not an image; pass the image patient001_frame01.nii.gz instead",
                   tmp_path / "out", [label.parent])


@pytest.mark.parametrize("where", ["the patient folder", "inside the patient folder", "inside the batch folder"])
def test_output_in_or_inside_an_input_folder(where, patients, tmp_path, capsys) -> None:
    patient = patients / "patient001"
    given, out = {"the patient folder": (patient, patient),
                  "inside the patient folder": (patient, patient / "seg"),
                  "inside the batch folder": (patients, patients / "seg")}[where]
    relation = "is" if out == given else "is inside"
    refused_in_place(capsys, ["-i", given, "-m", tmp_path / "model", "-o", out], f"the output folder {out} "
                     f"{relation} the input folder {given}; pass a -o folder outside every input (outputs are never "
                     f"written into inputs)", [patients])
    assert not out.exists() or out == given


def test_output_inside_the_model_folder(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    model = copy_model(tiny_trained_model, tmp_path / "model", checkpoint=False)
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    expect_refusal(capsys, ["-i", image, "-m", model], f"the output folder {model / 'fold_0' / 'seg'} is inside the "
                   f"input folder {model}; pass a -o folder outside every input (outputs are never written into "
                   f"inputs)", model / "fold_0" / "seg", [model])


def test_output_folder_on_a_virtual_file_system(patients, tmp_path, capsys) -> None:
    image = patients / "patient001" / "patient001_frame01.nii.gz"
    out = Path("/proc/nnunet-rdvit-test-output")
    expect_refusal(capsys, ["-i", image, "-m", tmp_path / "model"], re.compile(
        rf"nnunet-rdvit predict: error: cannot write to the output folder {out} \(.+\); pass a writable folder for "
        rf"-o"), out, [image])


@pytest.mark.parametrize("step, message", [
    ("0.001", "a tile step of 0.001 is below 0.1: the tile count grows as (1/step) per patch axis, so the run would "
              "take far longer with no gain in accuracy; use a step in [0.1, 1] (nnU-Net's default is 0.5)"),
    ("1.5", "the tile step is a fraction of the patch in (0, 1], got 1.5"),
    ("nan", "the tile step is a fraction of the patch in (0, 1], got nan"),
])
def test_tile_step_out_of_range(step, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        run_cli(capsys, "predict", "-i", tmp_path, "-o", tmp_path / "out", "-m", tmp_path, "-step_size", step)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and last == f"nnunet-rdvit predict: error: argument -step_size: {message}"
    assert not (tmp_path / "out").exists()


def test_other_label_set_is_refused_not_renamed(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    model = copy_model(tiny_trained_model, tmp_path / "model", checkpoint=False)
    dataset = json.loads((model / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}
    (model / "dataset.json").write_text(json.dumps(dataset))
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    expect_refusal(capsys, ["-i", image, "-m", model], f"the model in {model} predicts labels 0 background, 1 edema, "
                   f"2 necrosis, 3 enhancing, not ACDC's 1 RV, 2 MYO, 3 LV: predict names its outputs RV/MYO/LV and "
                   f"computes cardiac indices from them, so it takes only ACDC-style models; segment with this model "
                   f"through nnUNetv2_predict instead", tmp_path / "out", [image])


def test_acdc_label_sets() -> None:
    from nnunet_rdvit.inference.model import is_acdc_label_set

    assert is_acdc_label_set({"background": 0, "RV": 1, "MYO": 2, "LV": 3})
    assert is_acdc_label_set({"background": 0, "RV": 1, "MLV": 2, "LVC": 3})  # nnU-Net's Dataset027_ACDC
    assert not is_acdc_label_set({"background": 0, "LV": 1, "MYO": 2, "RV": 3})  # same names, other values
    assert not is_acdc_label_set({"background": 0, "RV": 1, "MYO": 2, "LV": 3, "scar": 4})
    assert not is_acdc_label_set({"background": 0, "RV": [1], "MYO": 2, "LV": 3})  # region-based


def test_batch_finds_patients_one_and_two_levels_down(patients, tmp_path) -> None:
    from nnunet_rdvit.inference.discovery import discover_inputs

    batch = tmp_path / "batch"
    _patient_copy(patients, batch, "patient001")
    _patient_copy(patients, batch / "group", "patient002")
    loose = shutil.copy(batch / "patient001" / "patient001_frame01.nii.gz", batch / "extra.nii.gz")
    inputs = discover_inputs([batch])
    assert [patient.name for patient in inputs.patients] == ["patient001", "patient002"]
    assert [volume.source for volume in inputs.singles] == [Path(loose)]
    assert inputs.failures == []

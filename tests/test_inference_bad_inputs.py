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

from inference_support import (affine_from, files_under, inference_env, run_cli, save_nifti,  # noqa: F401
                               sha256, synthetic_image)

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


BAD_VOLUMES: dict[str, tuple[Callable[[Path, np.ndarray], Path], list[str], str]] = {
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
    "wrong channel count": (_vector_voxels, [],
                            "rgb.nii.gz has 3 values per voxel (shape 48×48×6×1×3); the model expects 1 channel "
                            "(one cine-MRI intensity per voxel): pass one 3D volume per frame"),
}


def expect_refusal(capsys, args: list, message: str | re.Pattern, out: Path, inputs: list[Path]) -> None:
    before = {p: sha256(p) for path in inputs for p in ([path] if path.is_file() else files_under(path))}
    code, _, err = run_cli(capsys, "predict", *args, "-o", out, "--no-progress")
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
                           "--no-progress")
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
                   f"not exist", tmp_path / "out", [image])


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
    code, _, err = run_cli(capsys, "predict", "-i", image, "-m", parent, "-o", tmp_path / "out", "--no-progress")
    assert code == 2
    assert f"{parent} is not a trained nnU-Net model folder: dataset.json is missing (it holds model folders: " in err
    assert f"{tiny_trained_model.name}" in err and "pass one of them)" in err


def test_model_folder_without_final_checkpoint(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    model = copy_model(tiny_trained_model, tmp_path / "model", checkpoint=False)
    (model / "fold_0" / "checkpoint_latest.pth").write_bytes(b"")
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    expect_refusal(capsys, ["-i", image, "-m", model], f"no trained fold in {model}: no fold_N/checkpoint_final.pth "
                   f"(found fold_0 with other checkpoints: training unfinished? pass --checkpoint "
                   f"checkpoint_best.pth to use them)", tmp_path / "out", [image])
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
                   f"cannot write to the output folder {blocker / 'out'} (Not a directory)", blocker / "out", [image])
    expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model], f"the output {blocker} exists and is not a folder",
                   blocker, [image, blocker])


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only folders")
def test_read_only_output_folder(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        expect_refusal(capsys, ["-i", image, "-m", tiny_trained_model],
                       f"cannot write to the output folder {locked} (Permission denied)", locked, [image])
    finally:
        locked.chmod(0o700)


def test_output_folder_holding_the_inputs(tiny_workspace, tiny_trained_model, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    image = save_nifti(folder / "case.nii.gz", synthetic_image(tiny_workspace), AFFINE)
    before = sha256(image)
    code, _, err = run_cli(capsys, "predict", "-i", folder, "-m", tiny_trained_model, "-o", folder, "--no-progress")
    assert code == 2 and sha256(image) == before and [p.name for p in folder.iterdir()] == ["case.nii.gz"]
    assert err.strip().endswith(f"the output folder {folder} holds the input case.nii.gz; choose an output folder "
                                f"without inputs (outputs would sit beside, or replace, the originals)")


def test_missing_input_and_empty_folder(tiny_trained_model, tmp_path, capsys) -> None:
    expect_refusal(capsys, ["-i", tmp_path / "nope.nii.gz", "-m", tiny_trained_model],
                   f"input {tmp_path / 'nope.nii.gz'} does not exist", tmp_path / "out", [])
    (tmp_path / "empty").mkdir()
    expect_refusal(capsys, ["-i", tmp_path / "empty", "-m", tiny_trained_model],
                   f"{tmp_path / 'empty'} has no NIfTI files (.nii, .nii.gz) and no patient folders with Info.cfg",
                   tmp_path / "out", [])
    expect_refusal(capsys, ["-i", tmp_path / "empty", "-m", tiny_trained_model, "--ed", "1"],
                   "--ed and --es go together: give both frame numbers or neither", tmp_path / "out", [])

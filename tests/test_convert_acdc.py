"""ACDC -> nnU-Net conversion: output layout, Dataset027 split semantics, idempotence, refusal to clobber,
and validation that reports every bad case at once without writing anything or touching the source."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest

from nnunet_rdvit import cli
from nnunet_rdvit.dataset_conversion import (ConversionResult, convert_acdc, load_case_metadata,
                                             patient_grouped_splits, patient_of_case)
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.synthetic_acdc import generate_synthetic_acdc

REAL_ACDC = Path(__file__).resolve().parents[2] / "shared/data/acdc"
N_PATIENTS = 7


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_acdc(tmp_path_factory.mktemp("pristine"), n_patients=N_PATIENTS, seed=1,
                                   shape=(32, 32, 3))


@pytest.fixture
def source(pristine: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the synthetic ACDC folder that a test may damage."""
    return Path(shutil.copytree(pristine, tmp_path / "acdc"))


def _digests(root: Path) -> dict[str, tuple[str, int]]:
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _frames(folder: Path) -> list[int]:
    return sorted(int(p.name.split("_frame")[1][:2]) for p in folder.glob("*_gt.nii.gz"))


def _save_like(path: Path, data: np.ndarray, zooms: tuple[float, ...] | None = None) -> None:
    original = nib.load(path)
    header = original.header.copy()
    header.set_data_dtype(data.dtype)
    nifti = nib.Nifti1Image(data, original.affine, header)
    if zooms is not None:
        nifti.header.set_zooms(zooms)
    path.write_bytes(gzip.compress(nifti.to_bytes()))


def test_converts_synthetic_acdc(source: Path, tmp_path: Path) -> None:
    result = convert_acdc(source, tmp_path / "raw", progress=False)

    dataset = tmp_path / "raw" / "Dataset027_ACDC"
    assert isinstance(result, ConversionResult)
    assert (result.dataset_dir, result.n_training_cases, result.n_test_cases, result.n_patients) == \
           (dataset, 2 * N_PATIENTS, 0, N_PATIENTS)
    assert not result.unchanged and result.preprocessed_dir is None and result.seconds > 0
    cases = sorted(f"{p.name}_frame{f:02d}" for p in (source / "training").iterdir() for f in _frames(p))
    assert sorted(p.name for p in (dataset / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in cases]
    assert sorted(p.name for p in (dataset / "labelsTr").iterdir()) == [f"{c}.nii.gz" for c in cases]
    assert not (dataset / "imagesTs").exists()
    # Bytes are copied unchanged, no resampling.
    case = cases[0]
    patient = case.split("_")[0]
    assert (dataset / "imagesTr" / f"{case}_0000.nii.gz").read_bytes() == \
           (source / "training" / patient / f"{case}.nii.gz").read_bytes()
    assert (dataset / "labelsTr" / f"{case}.nii.gz").read_bytes() == \
           (source / "training" / patient / f"{case}_gt.nii.gz").read_bytes()

    dataset_json = json.loads((dataset / "dataset.json").read_text())
    assert dataset_json["channel_names"] == {"0": "cineMRI"}
    assert dataset_json["labels"] == {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
    assert dataset_json["numTraining"] == 2 * N_PATIENTS and dataset_json["file_ending"] == ".nii.gz"
    assert "Bernard" in dataset_json["reference"]

    metadata = load_case_metadata(dataset)
    assert sorted(metadata) == cases
    info = dict(line.split(": ") for line in (source / "training/patient001/Info.cfg").read_text().splitlines())
    assert metadata["patient001_frame01"] == {
        "patient": "patient001", "phase": "ED", "frame": 1, "group": info["Group"],
        "height": float(info["Height"]), "weight": float(info["Weight"]), "nb_frames": int(info["NbFrame"]),
        "subset": "training"}
    assert metadata[f"patient001_frame{int(info['ES']):02d}"]["phase"] == "ES"
    assert not [p for p in (tmp_path / "raw").iterdir() if p.name.startswith(".")]


def test_split_is_patient_grouped_with_dataset027_semantics(source: Path, tmp_path: Path) -> None:
    from nnunetv2.dataset_conversion.Dataset027_ACDC import create_ACDC_split

    dataset = convert_acdc(source, tmp_path, progress=False).dataset_dir
    splits = json.loads((dataset / "splits_final.json").read_text())
    assert splits == create_ACDC_split(str(dataset / "labelsTr"))  # nnU-Net's own function is the oracle

    all_cases = sorted(p.name[:-len(".nii.gz")] for p in (dataset / "labelsTr").iterdir())
    validated = []
    for split in splits:
        train_patients = {patient_of_case(c) for c in split["train"]}
        val_patients = {patient_of_case(c) for c in split["val"]}
        assert not train_patients & val_patients
        assert sorted(split["train"] + split["val"]) == all_cases
        assert all(len([c for c in split["val"] if patient_of_case(c) == p]) == 2 for p in val_patients)
        validated += sorted(val_patients)
    assert sorted(validated) == sorted({patient_of_case(c) for c in all_cases})  # each patient exactly once

    patients = np.unique([patient_of_case(c) for c in all_cases])
    np.random.RandomState(1234).shuffle(patients)
    for fold, split in enumerate(splits):
        assert sorted({patient_of_case(c) for c in split["val"]}) == sorted(patients[fold::5])


def test_patient_grouping_rules() -> None:
    assert patient_of_case("patient001_frame01") == "patient001"
    assert patient_of_case("case_a_frame7") == "case_a"
    assert patient_of_case("hippocampus_001") == "hippocampus_001"  # numeric suffixes are the patient
    assert patient_of_case("BraTS2021_00000") == "BraTS2021_00000"
    splits = patient_grouped_splits([f"p{i}_frame{f}" for i in range(6) for f in (1, 9)])
    assert all(len(s["val"]) % 2 == 0 for s in splits)
    with pytest.raises(ValueError):
        patient_grouped_splits(["a", "b", "c"])


def test_preprocessed_copies_and_metadata(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    result = convert_acdc(source, dataset_id=5, progress=False)
    assert result.dataset_dir == tmp_path / "raw" / "Dataset005_ACDC"
    assert result.preprocessed_dir == tmp_path / "pre" / "Dataset005_ACDC"
    for name in ("splits_final.json", "case_metadata.json"):
        assert (result.preprocessed_dir / name).read_bytes() == (result.dataset_dir / name).read_bytes()
    assert load_case_metadata(result.preprocessed_dir) == load_case_metadata(result.dataset_dir)
    assert load_case_metadata(tmp_path) == {}


def test_rerun_is_a_no_op(source: Path, tmp_path: Path) -> None:
    convert_acdc(source, tmp_path, progress=False)
    before = _digests(tmp_path)
    again = convert_acdc(source, tmp_path, progress=False)
    assert again.unchanged and again.n_training_cases == 2 * N_PATIENTS
    assert _digests(tmp_path) == before


@pytest.mark.parametrize("edit", ["delete", "change", "add"])
def test_edited_conversion_is_only_replaced_on_request(source: Path, tmp_path: Path, edit: str) -> None:
    dataset = convert_acdc(source, tmp_path, progress=False).dataset_dir
    pristine_output = {k: v[0] for k, v in _digests(dataset).items()}
    victim = sorted((dataset / "labelsTr").iterdir())[0]
    if edit == "delete":
        victim.unlink()
    elif edit == "change":
        victim.write_bytes(b"hand-edited")
    else:
        (dataset / "labelsTr" / "extra.nii.gz").write_bytes(b"someone's case")
    edited = _digests(dataset)
    with pytest.raises(UserError, match="edited since.*--overwrite"):
        convert_acdc(source, tmp_path, progress=False)
    assert _digests(dataset) == edited
    assert not convert_acdc(source, tmp_path, overwrite=True, progress=False).unchanged
    assert {k: v[0] for k, v in _digests(dataset).items()} == pristine_output


def test_refuses_to_replace_a_different_dataset(source: Path, tmp_path: Path) -> None:
    other = generate_synthetic_acdc(tmp_path / "other", n_patients=5, seed=99, shape=(32, 32, 3))
    dataset = convert_acdc(source, tmp_path / "raw", progress=False).dataset_dir
    before = _digests(dataset)
    with pytest.raises(UserError, match="different dataset.*--overwrite"):
        convert_acdc(other, tmp_path / "raw", progress=False)
    assert _digests(dataset) == before

    result = convert_acdc(other, tmp_path / "raw", overwrite=True, progress=False)
    assert result.n_patients == 5 and not result.unchanged
    assert len(list((dataset / "imagesTr").iterdir())) == 10
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["Dataset027_ACDC"]  # no backup/temp left


def test_refuses_a_folder_it_did_not_write(source: Path, tmp_path: Path) -> None:
    (tmp_path / "Dataset027_ACDC").mkdir()
    (tmp_path / "Dataset027_ACDC" / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="--overwrite"):
        convert_acdc(source, tmp_path, progress=False)
    assert (tmp_path / "Dataset027_ACDC" / "mine.txt").read_text() == "keep me"


def test_refuses_conflicting_preprocessed_split(source: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    (tmp_path / "pre" / "Dataset027_ACDC").mkdir(parents=True)
    (tmp_path / "pre" / "Dataset027_ACDC" / "splits_final.json").write_text("[]")
    with pytest.raises(UserError, match="splits_final.json differs"):
        convert_acdc(source, tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()
    convert_acdc(source, tmp_path / "raw", overwrite=True, progress=False)
    assert len(json.loads((tmp_path / "pre" / "Dataset027_ACDC" / "splits_final.json").read_text())) == 5


def test_refuses_a_dataset_id_in_use(source: Path, tmp_path: Path) -> None:
    (tmp_path / "Dataset027_Other").mkdir()
    with pytest.raises(UserError, match="Dataset027_Other.*--dataset-id"):
        convert_acdc(source, tmp_path, progress=False)


def test_needs_an_nnunet_raw_folder(source: Path) -> None:
    with pytest.raises(UserError, match=r"nnUNet_raw.*export nnUNet_raw=.*--nnunet-raw"):
        convert_acdc(source, progress=False)


def test_wants_the_folder_containing_training(source: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="pass the ACDC folder that contains training/"):
        convert_acdc(source / "training", tmp_path / "raw", progress=False)
    with pytest.raises(UserError, match="does not exist"):
        convert_acdc(tmp_path / "nowhere", tmp_path / "raw", progress=False)


def test_needs_five_training_patients(source: Path, tmp_path: Path) -> None:
    for folder in sorted((source / "training").iterdir())[4:]:
        shutil.rmtree(folder)
    with pytest.raises(UserError, match="at least 5"):
        convert_acdc(source, tmp_path / "raw", progress=False)


def test_testing_patients_go_to_images_ts(source: Path, tmp_path: Path) -> None:
    (source / "testing").mkdir()
    for name in ("patient006", "patient007"):
        shutil.move(source / "training" / name, source / "testing" / name)
    # A testing patient may come without labels and without a Group (as in the original challenge release).
    unlabelled = source / "testing" / "patient007"
    for gt in unlabelled.glob("*_gt.nii.gz"):
        gt.unlink()
    info = unlabelled / "Info.cfg"
    info.write_text("".join(line for line in info.read_text().splitlines(True) if not line.startswith("Group")))

    result = convert_acdc(source, tmp_path / "raw", progress=False)
    dataset = result.dataset_dir
    assert (result.n_training_cases, result.n_test_cases, result.n_patients, result.n_test_patients) == (10, 4, 5, 2)
    assert len(list((dataset / "imagesTs").iterdir())) == 4
    assert sorted(p.name for p in (dataset / "labelsTs").iterdir()) == \
           [f"patient006_frame{f:02d}.nii.gz" for f in _frames(source / "testing" / "patient006")]
    assert json.loads((dataset / "dataset.json").read_text())["numTraining"] == 10
    splits = json.loads((dataset / "splits_final.json").read_text())
    assert not [c for s in splits for c in s["train"] + s["val"] if c.startswith(("patient006", "patient007"))]
    assert load_case_metadata(dataset)["patient007_frame01"]["group"] is None


# Each breaks one patient's folder; returns the text the error message must contain for that case.
def _missing_gt(folder: Path) -> str:
    (folder / f"{folder.name}_frame01_gt.nii.gz").unlink()
    return f"{folder.name}_frame01_gt.nii.gz is missing"


def _missing_frame(folder: Path) -> str:
    es = _frames(folder)[1]
    (folder / f"{folder.name}_frame{es:02d}.nii.gz").unlink()
    return f"{folder.name}_frame{es:02d}.nii.gz is missing"


def _spacing_mismatch(folder: Path) -> str:
    path = folder / f"{folder.name}_frame01_gt.nii.gz"
    _save_like(path, np.asanyarray(nib.load(path).dataobj), zooms=(1.6, 1.6, 10.0))
    return "spacing (1.6, 1.6, 10.0) differs from the image's (1.6, 1.6, 8.0)"


def _shape_mismatch(folder: Path) -> str:
    path = folder / f"{folder.name}_frame01_gt.nii.gz"
    _save_like(path, np.asanyarray(nib.load(path).dataobj)[:30])
    return "shape (30, 32, 3) differs"


def _labels_outside(folder: Path) -> str:
    path = folder / f"{folder.name}_frame01_gt.nii.gz"
    data = np.asanyarray(nib.load(path).dataobj).copy()
    data[0, 0, 0], data[1, 0, 0] = 4, 255
    _save_like(path, data)
    return "label values 4, 255 outside 0..3"


def _missing_info(folder: Path) -> str:
    (folder / "Info.cfg").unlink()
    return f"{folder.name}: Info.cfg is missing"


def _malformed_info(folder: Path) -> str:
    lines = (folder / "Info.cfg").read_text().splitlines()
    bad = [line for line in lines if not line.startswith(("Group", "ED"))] + ["ED: one"]
    (folder / "Info.cfg").write_text("\n".join(bad) + "\n")
    return "ED 'one' is not an integer"


def _two_d(folder: Path) -> str:
    path = folder / f"{folder.name}_frame01.nii.gz"
    _save_like(path, np.asanyarray(nib.load(path).dataobj)[:, :, 0])
    return "is 2D with shape (32, 32)"


def _four_d(folder: Path) -> str:
    path = folder / f"{folder.name}_frame01.nii.gz"
    data = np.asanyarray(nib.load(path).dataobj)
    _save_like(path, np.stack([data, data], axis=-1))
    return "is 4D with shape (32, 32, 3, 2)"


def _corrupt_gz(folder: Path) -> str:
    path = folder / f"{folder.name}_frame01.nii.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # damage the deflate stream mid-file
    path.write_bytes(bytes(data))
    return f"{folder.name}_frame01.nii.gz is not a readable gzip-compressed NIfTI-1 file"


def _unnamed_frame(folder: Path) -> str:
    shutil.copy(folder / f"{folder.name}_frame01.nii.gz", folder / f"{folder.name}_frame05.nii.gz")
    return f"{folder.name}_frame05.nii.gz not named as ED (1) or ES"


BREAKERS: list[Callable[[Path], str]] = [_missing_gt, _missing_frame, _spacing_mismatch, _shape_mismatch,
                                         _labels_outside, _missing_info, _malformed_info, _two_d, _four_d,
                                         _corrupt_gz, _unnamed_frame]


def _assert_rejected(source: Path, tmp_path: Path, expected: list[str]) -> str:
    before = _digests(source)
    with pytest.raises(UserError) as raised:
        convert_acdc(source, tmp_path / "raw", progress=False)
    message = str(raised.value)
    for text in expected:
        assert text in message
    assert "nothing was written" in message
    assert not (tmp_path / "raw").exists()
    assert _digests(source) == before
    return message


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda b: b.__name__.strip("_"))
def test_rejects_bad_input(source: Path, tmp_path: Path, breaker: Callable[[Path], str]) -> None:
    expected = breaker(source / "training" / "patient002")
    message = _assert_rejected(source, tmp_path, [expected, "training/patient002"])
    assert "patient001" not in message and "patient003" not in message


def test_reports_every_bad_case_at_once(pristine: Path, tmp_path: Path) -> None:
    source = generate_synthetic_acdc(tmp_path / "acdc", n_patients=len(BREAKERS) + 1, seed=1, shape=(32, 32, 3))
    folders = sorted((source / "training").iterdir())[1:]
    expected = [f"training/{folder.name}: {breaker(folder)}" for folder, breaker in zip(folders, BREAKERS)]
    message = _assert_rejected(source, tmp_path, [e.split(": ", 1)[0] for e in expected])
    for text in expected:
        assert text.split(": ", 1)[1] in message
    assert f"in {len(BREAKERS)} patient(s)" in message


def test_malformed_info_lists_every_problem(source: Path, tmp_path: Path) -> None:
    (source / "training/patient003/Info.cfg").write_text("ED: 1\nES: 1\nGroup: XYZ\nWeight heavy\nHeight: tall\n")
    _assert_rejected(source, tmp_path, ["Weight heavy", "Height 'tall' is not a number",
                                        "Group 'XYZ' is not one of", "ED and ES name the same frame"])


@pytest.fixture
def cli_main(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], int]:
    """The real CLI entry point, limited to this command so another command's import cannot break the test."""
    assert "convert_acdc" in cli.COMMANDS
    monkeypatch.setattr(cli, "COMMANDS", ("convert_acdc",))
    return cli.main


def test_cli(source: Path, tmp_path: Path, cli_main: Callable[[list[str]], int],
             capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["convert-acdc", str(source), "--nnunet-raw", str(tmp_path / "raw"), "--dataset-id", "8",
            "--disable_progress_bar"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "Dataset008_ACDC written" in out and f"{2 * N_PATIENTS} cases from {N_PATIENTS} patients" in out
    assert "fold  patients   DCM   HCM  MINF   NOR    RV" in out
    assert cli_main(argv) == 0
    assert "already up to date" in capsys.readouterr().out

    (source / "training/patient004/Info.cfg").unlink()
    assert cli_main(argv) == 2
    assert "patient004: Info.cfg is missing" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--dataset-id", "abc"], ["--dataset-id", "1000"], []])
def test_cli_rejects_bad_arguments(cli_main: Callable[[list[str]], int], tmp_path: Path, bad: list[str]) -> None:
    raw_dir = [str(tmp_path)] if bad else []
    with pytest.raises(SystemExit) as raised:
        cli_main(["convert-acdc", *raw_dir, *bad])
    assert raised.value.code == 2


def test_converts_real_acdc(tmp_path: Path) -> None:
    if not (REAL_ACDC / "training").is_dir():
        pytest.skip(f"real ACDC data not found at {REAL_ACDC}")
    from nnunetv2.dataset_conversion.Dataset027_ACDC import create_ACDC_split

    result = convert_acdc(REAL_ACDC, tmp_path, progress=False)
    assert (result.n_training_cases, result.n_patients, result.n_test_cases) == (200, 100, 0)
    splits = json.loads((result.dataset_dir / "splits_final.json").read_text())
    assert splits == create_ACDC_split(str(result.dataset_dir / "labelsTr"))
    metadata = load_case_metadata(result.dataset_dir)
    assert len(splits) == 5
    for split in splits:
        val_patients = {metadata[c]["patient"]: metadata[c]["group"] for c in split["val"]}
        assert len(val_patients) == 20 and len(split["val"]) == 40
        assert set(val_patients.values()) == {"DCM", "HCM", "MINF", "NOR", "RV"}
    assert metadata["patient090_frame04"]["phase"] == "ED"  # ED is not always frame 1

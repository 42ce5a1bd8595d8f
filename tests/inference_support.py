"""Support shared by the inference tests (imported by them; not a test module itself)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_rdvit.cli import main


def run_cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, sform_code: int = 1, qform_code: int = 1,
               zooms: tuple[float, ...] | None = None) -> Path:
    """A gzipped NIfTI-1 file with chosen sform/qform codes; ``zooms`` overwrites ``pixdim[1:4]`` in the encoded
    header (nibabel would otherwise recompute or "fix" them), e.g. to disagree with the affine or be zero."""
    image = nib.Nifti1Image(data, affine)
    image.header.set_sform(affine, code=sform_code)
    image.header.set_qform(affine, code=qform_code)
    raw = bytearray(image.to_bytes())
    if zooms is not None:
        raw[80:92] = np.asarray(zooms, dtype="<f4").tobytes()  # pixdim[1:4]; pixdim starts at byte 76
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(bytes(raw), mtime=0))
    return path


def affine_from(spacing: tuple[float, float, float], rotation_deg: tuple[float, float, float] = (0, 0, 0),
                origin: tuple[float, float, float] = (0, 0, 0), flips: tuple[int, int, int] = (1, 1, 1),
                permutation: tuple[int, int, int] = (0, 1, 2)) -> np.ndarray:
    """Voxel-to-world (RAS) affine: axes permuted and flipped, scaled by ``spacing``, rotated, shifted."""
    ax, ay, az = np.deg2rad(rotation_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    axes = np.eye(3)[:, list(permutation)] * np.array(flips)
    affine = np.eye(4)
    affine[:3, :3] = rz @ ry @ rx @ axes @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def synthetic_image(tiny_workspace, patient: str = "patient101", frame: int = 1) -> np.ndarray:
    """The image data (x, y, z) of a held-out synthetic patient frame, reused under other headers."""
    path = tiny_workspace.acdc_raw / "testing" / patient / f"{patient}_frame{frame:02d}.nii.gz"
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


def sitk_geometry(path) -> tuple:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()


def assert_same_geometry(output, source) -> None:
    out, src = nib.load(output), nib.load(source)
    assert out.shape == src.shape[:3]
    assert np.array_equal(out.header.get_zooms()[:3], src.header.get_zooms()[:3])
    for form in ("get_sform", "get_qform"):
        (a, code_a), (b, code_b) = getattr(out.header, form)(coded=True), getattr(src.header, form)(coded=True)
        assert code_a == code_b and (code_a == 0 or np.allclose(a, b, atol=1e-6))
    assert np.allclose(out.affine, src.affine, atol=1e-6)
    size, spacing, origin, direction = sitk_geometry(output)
    src_size, src_spacing, src_origin, src_direction = sitk_geometry(source)
    assert size == src_size[:3]
    assert np.allclose(spacing, src_spacing[:3], atol=1e-5) and np.allclose(origin, src_origin[:3], atol=1e-4)
    assert np.allclose(np.reshape(direction, (3, 3)), np.reshape(src_direction, (-1, len(src_size)))[:3, :3],
                       atol=1e-5)

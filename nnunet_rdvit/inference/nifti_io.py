"""NIfTI in and out for inference: every check that turns a bad file into one clear message, and output
files that carry the input's own header, so they lie exactly on the input's voxel grid.

Files are read completely into memory first (gzip data is decompressed with its CRC checked, and the
header's data size is compared with what is there), so corruption anywhere is caught before anything is
computed; the input is never opened for writing. Outputs keep the
input's header (shape, ``pixdim``, qform and sform with their codes) byte for byte and only change the data
type, scaling and description; they are checked after encoding and published atomically.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from nnunet_rdvit.atomic import atomic_path
from nnunet_rdvit.errors import UserError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
# Voxel sizes outside this range are no MR image's (microscopy-scale 10 µm to 10 cm slices).
PLAUSIBLE_SPACING_MM = (0.01, 100.0)
_HEADER_CLASSES = {348: (nib.Nifti1Header, nib.Nifti1Image), 540: (nib.Nifti2Header, nib.Nifti2Image)}


def is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: Path) -> str:
    """``patient001_frame01.nii.gz`` -> ``patient001_frame01``."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


@dataclass(frozen=True)
class Volume3D:
    """One 3D volume in file voxel order (x, y, z), with the header its outputs will carry."""

    path: Path
    reference: nib.Nifti1Image | nib.Nifti2Image  # header and affine of the (frame of the) input
    data: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the file's x, y, z axes (``pixdim[1:4]``)."""
        return tuple(float(z) for z in self.reference.header.get_zooms()[:3])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0


def load_nifti(path: Path) -> nib.Nifti1Image | nib.Nifti2Image:
    """The NIfTI image in ``path`` with its voxel data loaded; :class:`UserError` for anything unreadable."""
    if not path.is_file():
        raise UserError(f"{path} does not exist or is not a file")
    if not is_nifti_name(path):
        raise UserError(f"{path.name} is not a NIfTI file (expected a .nii or .nii.gz name)")
    raw = _decompressed(path, path.read_bytes())
    header_class, image_class = _header_classes(path, raw)
    try:
        header = header_class.from_fileobj(io.BytesIO(raw), check=False)
        expected = header.get_data_offset() + int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
    except Exception as error:  # nibabel raises several types for a damaged header; all mean the same here
        raise UserError(f"{path.name} has a damaged NIfTI header ({error})") from None
    if len(raw) < expected:
        raise UserError(f"{path.name} is truncated: its header announces {expected} bytes, the file holds "
                        f"{len(raw)}; copy or export the file again")
    _check_spacing(path, header)
    try:
        return image_class.from_bytes(raw)
    except Exception as error:
        raise UserError(f"{path.name} cannot be read as NIfTI ({type(error).__name__}: "
                        f"{str(error).splitlines()[0]})") from None


def _decompressed(path: Path, raw: bytes) -> bytes:
    """Gunzip when the bytes are gzip (by their magic number, whatever the name says), checking the CRC."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise UserError(f"{path.name} is truncated (the gzip stream ends early); copy or export the file "
                        f"again") from None
    except gzip.BadGzipFile as error:
        reason = "its gzip checksum does not match the data" if "CRC" in str(error) else f"gzip: {error}"
        raise UserError(f"{path.name} is corrupt ({reason}); copy or export the file again") from None
    except zlib.error as error:
        raise UserError(f"{path.name} is corrupt (gzip: {error}); copy or export the file again") from None


def _header_classes(path: Path, raw: bytes) -> tuple[type, type]:
    for order in ("little", "big"):
        size = int.from_bytes(raw[:4], order) if len(raw) >= 4 else 0
        if size in _HEADER_CLASSES:
            return _HEADER_CLASSES[size]
    raise UserError(f"{path.name} is not a NIfTI file (no NIfTI-1 or NIfTI-2 header at the start)")


def _check_spacing(path: Path, header: nib.Nifti1Header) -> None:
    """Refuse zero, negative, non-finite or implausible ``pixdim[1:4]`` (nibabel would silently replace zeros by
    1; a spacing far outside MRI's range means a header in other units or a damaged one, and every volume would
    be off by as many orders of magnitude)."""
    n_spatial = min(int(header["dim"][0]), 3)
    spacing = np.asarray(header["pixdim"][1:1 + n_spatial], dtype=float)
    shown = ", ".join(f"{value:g}" for value in spacing)
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        what = "has no voxel spacing" if not np.any(spacing) else "has an invalid voxel spacing"
        raise UserError(f"{path.name} {what} (pixdim = {shown}); volumes and cardiac indices depend on it, so "
                        f"set the real spacing in mm in the header and run again")
    low, high = PLAUSIBLE_SPACING_MM
    if not ((spacing >= low) & (spacing <= high)).all():
        raise UserError(f"{path.name} has a voxel spacing of {shown} mm, outside the plausible {low:g}-{high:g} mm "
                        f"of an MR image (a header in metres or microns, or a damaged one?); volumes and cardiac "
                        f"indices depend on it, so set the real spacing in mm in the header and run again")


def read_image(path: Path, frame: int | None = None) -> Volume3D:
    """A 3D intensity volume: the file itself, or frame ``frame`` (1-based) of a 4D cine file."""
    image = load_nifti(path)
    shape = image.shape
    _check_real_intensities(path, image)
    if len(shape) >= 5:
        raise UserError(f"{path.name} has {int(np.prod(shape[4:]))} values per voxel (shape {_shape(shape)}); the "
                        f"model expects 1 channel (one cine-MRI intensity per voxel): pass one 3D volume per frame")
    if len(shape) < 3:
        raise UserError(f"{path.name} is {len(shape)}D (shape {_shape(shape)}); the model segments 3D short-axis "
                        f"stacks: save it as a 3D volume (a single slice is shape {_shape((*shape, 1))})")
    if len(shape) == 4:
        if frame is None:
            raise UserError(f"{path.name} is 4D (shape {_shape(shape)}, {shape[3]} frames); choose the frames "
                            f"with --ed N --es M (1-based frame numbers, as in Info.cfg) to segment end-diastole "
                            f"and end-systole, or pass 3D volumes")
        if not 1 <= frame <= shape[3]:
            raise UserError(f"{path.name} has frames 1..{shape[3]}; frame {frame} does not exist")
        data = np.asarray(image.dataobj[..., frame - 1], dtype=np.float32)
        reference = type(image)(data, image.affine, header=image.header)  # header becomes 3D, geometry kept
    elif frame is not None:
        raise UserError(f"{path.name} is a 3D volume; --ed/--es select frames of a 4D file or of a patient folder")
    else:
        data, reference = image.get_fdata(dtype=np.float32), image
    bad = ~np.isfinite(data)
    if bad.any():
        n_nan = int(np.isnan(data).sum())
        raise UserError(f"{path.name} contains {n_nan} NaN and {int(bad.sum()) - n_nan} infinite voxel(s); replace "
                        f"them (e.g. by 0) before segmenting")
    _check_image_content(path, data)
    return Volume3D(path, reference, data)


def _check_real_intensities(path: Path, image: nib.Nifti1Image) -> None:
    """One real number per voxel: complex (k-space or phase data) and RGB types have no single intensity."""
    dtype = image.get_data_dtype()
    if dtype.kind == "c":
        raise UserError(f"{path.name} holds complex values ({dtype}); the model segments magnitude images: save "
                        f"the magnitude (abs) as a real-valued volume")
    if dtype.kind not in "biuf":
        raise UserError(f"{path.name} holds {dtype} values (e.g. RGB), not one intensity per voxel; save a "
                        f"single-channel grey-value volume")


def _check_image_content(path: Path, data: np.ndarray) -> None:
    """An MR image has many grey values; a constant volume or one holding only label values is not an image."""
    values = np.unique(data)
    if len(values) == 1:
        raise UserError(f"{path.name} is constant (every voxel is {values[0]:g}): there is no image to segment; "
                        f"check the export")
    if len(values) <= 4 and set(values.tolist()) <= {0.0, 1.0, 2.0, 3.0}:
        raise UserError(f"{path.name} holds only the values {', '.join(f'{v:g}' for v in values)}: it is a label "
                        f"map (segmentation), not an MR image; pass the image it was drawn on")


def read_labels(path: Path, allowed: frozenset[int]) -> Volume3D:
    """A 3D label map whose values are all in ``allowed`` (ground truth for the agreement command)."""
    image = load_nifti(path)
    if len(image.shape) != 3:
        raise UserError(f"{path.name} is {len(image.shape)}D (shape {_shape(image.shape)}); a 3D label map is "
                        f"expected")
    data = np.asanyarray(image.dataobj)
    values = set(np.unique(data).tolist())
    if not values <= allowed:
        bad = sorted(values - allowed, key=str)[:5]
        raise UserError(f"{path.name} has label values {bad} outside {sorted(allowed)}")
    return Volume3D(path, image, data.astype(np.uint8))


def write_like(volume: Volume3D, data: np.ndarray, target: Path, description: str) -> None:
    """Write ``data`` (x, y, z) to ``target`` (.nii.gz) with ``volume``'s header: same grid, qform and sform."""
    if data.shape != volume.data.shape:
        raise ValueError(f"output shape {data.shape} differs from the input's {volume.data.shape}")
    reference = volume.reference
    header = reference.header.copy()
    header.set_data_dtype(data.dtype)
    header["cal_min"], header["cal_max"] = 0, 0  # the input's intensity window means nothing for this data
    header["descrip"] = description[:79].encode()
    image = type(reference)(data, reference.affine, header=header)
    image.header.set_slope_inter(1.0, 0.0)
    encoded = image.to_bytes()
    check_same_grid(volume, type(reference).from_bytes(encoded), target.name)
    with atomic_path(target) as temporary:
        temporary.write_bytes(gzip.compress(encoded, compresslevel=6, mtime=0))


def check_same_grid(volume: Volume3D, written: nib.Nifti1Image, name: str) -> None:
    """Shape, spacing, qform, sform and their codes of ``written`` must equal the input's; else a bug."""
    source, out = volume.reference.header, written.header
    problems = []
    if written.shape != volume.data.shape:
        problems.append(f"shape {written.shape} != {volume.data.shape}")
    if not np.array_equal(out.get_zooms()[:3], source.get_zooms()[:3]):
        problems.append("spacing")
    for form in ("qform", "sform"):
        matrix, code = getattr(out, f"get_{form}")(coded=True)
        source_matrix, source_code = getattr(source, f"get_{form}")(coded=True)
        if code != source_code or (code and not np.allclose(matrix, source_matrix, rtol=0, atol=1e-6)):
            problems.append(form)
    if problems:
        raise RuntimeError(f"{name}: output geometry differs from {volume.path.name} ({', '.join(problems)})")


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)

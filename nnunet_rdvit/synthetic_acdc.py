"""Synthetic cardiac cine-MRI in the exact raw ACDC layout, for tests and demos without the real data.

The layout, file names, ``Info.cfg`` format, label values and NIfTI header conventions mimic the ACDC
challenge data (Bernard et al., "Deep Learning Techniques for Automatic MRI Cardiac Multi-structures
Segmentation and Diagnosis: Is the Problem Solved?", IEEE TMI 37(11), 2018), so everything that reads ACDC
(the converter, nnU-Net planning, trainers) can be exercised end to end on a laptop in seconds.

Anatomy per short-axis slice: LV cavity = filled ellipse, MYO = ring around it, RV = crescent hugging one
side of the myocardium; everything shrinks towards the apex and the RV ends before the LV does. The
pathology group nudges the shapes (DCM: large thin-walled LV, HCM: thick wall, MINF: thinned wall
segment, RV: large RV), and ES has a smaller cavity and a thicker wall than ED.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from nnunet_rdvit.acdc_labels import BACKGROUND, GROUPS, LV, MYO, RV
from nnunet_rdvit.atomic import atomic_path, write_text_atomic


def generate_synthetic_acdc(out_dir: str | Path, n_patients: int = 12, *, seed: int = 0,
                            shape: tuple[int, int, int] = (96, 96, 8),
                            spacing: tuple[float, float, float] = (1.6, 1.6, 8.0),
                            first_patient_id: int = 1) -> Path:
    """Write ``out_dir/training/patientNNN/`` folders (ED frame01 + one ES frame, ``_gt`` labels, ``Info.cfg``).

    ``shape`` and ``spacing`` are (x, y, z) as stored in the NIfTI file. Groups come in contiguous blocks in
    ACDC order, so any ``n_patients >= 5`` covers every group about equally (blocks of 20 for 100 patients,
    like the real training set). Each patient draws from its own random stream seeded by
    ``(seed, patient id)``, and the same arguments give byte-identical files. Files are written atomically.
    Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    if len(shape) != 3 or min(shape) < 1 or min(shape[:2]) < 16:
        raise ValueError(f"shape must be (x, y, z) with x, y >= 16 and z >= 1, got {shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers, got {spacing}")
    if not 1 <= first_patient_id <= 999 - n_patients + 1:
        raise ValueError("patient ids must stay within 001-999")

    for index in range(n_patients):
        patient_id = first_patient_id + index
        group = GROUPS[index * len(GROUPS) // n_patients]
        _write_patient(out_dir / "training", patient_id, group, np.random.default_rng([seed, patient_id]),
                       tuple(shape), tuple(float(s) for s in spacing))
    return out_dir


def _write_patient(training_dir: Path, patient_id: int, group: str, rng: np.random.Generator,
                   shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> None:
    name = f"patient{patient_id:03d}"
    folder = training_dir / name
    folder.mkdir(parents=True, exist_ok=True)

    es_frame = int(rng.integers(8, 15))
    nb_frames = int(rng.integers(max(20, es_frame + 1), 31))
    height = round(float(rng.uniform(150.0, 195.0)), 1)
    weight = round(float(rng.uniform(50.0, 110.0)), 1)
    info = (f"ED: 1\nES: {es_frame}\nGroup: {group}\nHeight: {height:.1f}\n"
            f"NbFrame: {nb_frames}\nWeight: {weight:.1f}\n")
    write_text_atomic(folder / "Info.cfg", info)

    heart = _draw_heart(rng, group, shape)
    scene = _draw_scene(rng, shape)
    for frame, systole in ((1, False), (es_frame, True)):
        labels = _labels(heart, shape, systole)
        image = _image(rng, labels, scene)
        stem = f"{name}_frame{frame:02d}"
        for file_name, volume in ((f"{stem}.nii.gz", image.astype(np.float32)),
                                  (f"{stem}_gt.nii.gz", labels.astype(np.uint8))):
            with atomic_path(folder / file_name) as temp:
                temp.write_bytes(_nifti_gz(volume, spacing))


def _draw_heart(rng: np.random.Generator, group: str, shape: tuple[int, int, int]) -> dict:
    """Per-patient shape parameters, in voxels relative to the in-plane field of view."""
    size = min(shape[:2])
    lv_radius = rng.uniform(0.10, 0.13) * size
    wall = rng.uniform(0.035, 0.045) * size
    rv_scale = rng.uniform(0.9, 1.1)
    systolic_cavity = rng.uniform(0.62, 0.72)
    if group == "DCM":
        lv_radius, wall, systolic_cavity = lv_radius * 1.25, wall * 0.8, systolic_cavity + 0.2
    elif group == "HCM":
        lv_radius, wall = lv_radius * 0.85, wall * 1.6
    elif group == "RV":
        rv_scale *= 1.35
    return {
        "centre": np.array(shape[:2]) / 2 + rng.uniform(-0.08, 0.08, size=2) * size,
        "lv_radius": lv_radius,
        "elongation": rng.uniform(0.0, 0.15),
        "rotation": rng.uniform(0.0, np.pi),
        "wall": wall,
        # MINF: one angular sector of the wall is thinned (an infarct scar).
        "scar_angle": rng.uniform(0.0, 2 * np.pi) if group == "MINF" else None,
        "rv_side": rng.uniform(0.0, 2 * np.pi),
        "rv_scale": rv_scale,
        "systolic_cavity": systolic_cavity,
        "systolic_wall": rng.uniform(1.3, 1.5),
        "heart_slices": max(1, shape[2] - int(rng.integers(0, 2))),
    }


def _labels(heart: dict, shape: tuple[int, int, int], systole: bool) -> np.ndarray:
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    dx, dy = x - heart["centre"][0], y - heart["centre"][1]
    cos, sin = np.cos(heart["rotation"]), np.sin(heart["rotation"])
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    angle = np.arctan2(dy, dx)

    cavity_factor = heart["systolic_cavity"] if systole else 1.0
    wall = heart["wall"] * (heart["systolic_wall"] if systole else 1.0)
    if heart["scar_angle"] is not None:
        closeness = np.cos(angle - heart["scar_angle"])
        wall = wall * (1.0 - 0.45 * np.clip(closeness, 0.0, None) ** 4)

    labels = np.zeros(shape, dtype=np.uint8)
    n = heart["heart_slices"]
    for z in range(n):
        depth = z / max(n - 1, 1)  # 0 at the base, 1 at the apex
        scale = 1.0 - 0.55 * depth ** 1.5
        cavity = heart["lv_radius"] * scale * cavity_factor
        a, b = cavity * (1 + heart["elongation"]), cavity * (1 - heart["elongation"])
        r_cavity = (u / a) ** 2 + (v / b) ** 2
        r_epi = (u / (a + wall)) ** 2 + (v / (b + wall)) ** 2
        epicardium = r_epi <= 1.0
        section = labels[:, :, z]

        # RV: an ellipse centred on the epicardial border, minus the LV+MYO it overlaps -> a crescent.
        rv_extent = heart["lv_radius"] * heart["rv_scale"] * (1.0 - 0.9 * depth ** 1.5)
        rv_extent *= 0.75 if systole else 1.0
        if rv_extent > 1.5:
            cx, cy = np.cos(heart["rv_side"]), np.sin(heart["rv_side"])
            along = dx * cx + dy * cy - (heart["lv_radius"] * scale + wall) * 0.9
            across = -dx * cy + dy * cx
            rv = (along / (rv_extent * 0.8)) ** 2 + (across / (rv_extent * 1.7)) ** 2 <= 1.0
            section[rv & ~epicardium] = RV
        section[epicardium] = MYO
        if cavity > 1.0:
            section[r_cavity <= 1.0] = LV
    return labels


def _draw_scene(rng: np.random.Generator, shape: tuple[int, int, int]) -> dict:
    """Per-patient appearance: torso, texture, bias field, contrast and gain shared by ED and ES."""
    from scipy.ndimage import gaussian_filter

    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    torso = ((x / rng.uniform(0.8, 0.95)) ** 2 + (y / rng.uniform(0.65, 0.85)) ** 2 <= 1.0)
    texture = gaussian_filter(rng.normal(size=shape), sigma=(3.0, 3.0, 0.5))
    texture /= texture.std() + 1e-8
    gradient = rng.uniform(-0.25, 0.25, size=2)
    bias = 1.0 + gradient[0] * x + gradient[1] * y
    return {
        "torso": torso[:, :, None],
        "texture": texture,
        "bias": bias[:, :, None],
        "means": {BACKGROUND: 0.35, RV: rng.uniform(0.7, 0.8), MYO: rng.uniform(0.22, 0.3),
                  LV: rng.uniform(0.8, 0.9)},
        "noise": rng.uniform(0.05, 0.08),
        "gain": rng.uniform(200.0, 900.0),
    }


def _image(rng: np.random.Generator, labels: np.ndarray, scene: dict) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    image = np.where(scene["torso"], scene["means"][BACKGROUND] + 0.12 * scene["texture"], 0.04)
    for label in (RV, MYO, LV):
        image = np.where(labels == label, scene["means"][label], image)
    image = gaussian_filter(image, sigma=(0.8, 0.8, 0.0))
    image = image * scene["bias"] + rng.normal(scale=scene["noise"], size=labels.shape)
    return np.clip(image, 0.0, None) * scene["gain"]


def _nifti_gz(data: np.ndarray, spacing: tuple[float, float, float]) -> bytes:
    """Gzipped NIfTI-1 bytes with ACDC's header conventions.

    ACDC stores an sform (code "aligned", no qform) with x and y flipped, i.e. identity direction and
    zero origin in ITK's LPS convention, and the spacing in ``pixdim``. The real files leave the spacing out
    of the sform, which makes SimpleITK warn; we put it in, so SimpleITK reads the same geometry silently.
    ``mtime=0`` keeps the bytes reproducible.
    """
    import nibabel as nib

    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    image = nib.Nifti1Image(data, affine)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)

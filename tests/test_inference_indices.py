"""Cardiac indices, agreement statistics and boundary masks against values known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_rdvit.inference.agreement import agreement_statistics
from nnunet_rdvit.inference.cardiac_indices import (MYOCARDIAL_DENSITY_G_PER_ML, cardiac_indices,
                                                    structure_volumes_ml)
from nnunet_rdvit.inference.slices import mid_slice, slice_axis
from nnunet_rdvit.inference.structure_stats import boundary_voxel_mask

SPACING = (1.25, 1.5, 8.0)  # anisotropic, like a cine stack
VOXEL_ML = 1.25 * 1.5 * 8.0 / 1000.0


def heart(shape: tuple[int, int, int], lv_radius: float, wall: float, rv_box: tuple[slice, slice],
          slices: slice) -> np.ndarray:
    """LV = disc of ``lv_radius`` voxels, MYO = ring of ``wall`` voxels around it, RV = a box, over ``slices``."""
    labels = np.zeros(shape, dtype=np.uint8)
    x, y = np.meshgrid(np.arange(shape[0]) - shape[0] / 2 + 0.5, np.arange(shape[1]) - shape[1] / 2 + 0.5,
                       indexing="ij")
    r = np.hypot(x, y)
    section = np.zeros(shape[:2], dtype=np.uint8)
    section[rv_box] = 1
    section[r <= lv_radius + wall] = 2
    section[r <= lv_radius] = 3
    labels[:, :, slices] = section[:, :, None]
    return labels


def test_volumes_are_voxel_counts_times_voxel_volume() -> None:
    labels = np.zeros((40, 30, 10), dtype=np.uint8)
    labels[2:12, 3:8, 1:4] = 1  # 10*5*3 = 150 voxels
    labels[20:30, 10:20, 2:9] = 3  # 10*10*7 = 700 voxels
    labels[0, 0, 0] = 2
    volumes = structure_volumes_ml(labels, VOXEL_ML)
    assert volumes == pytest.approx({"RV": 150 * VOXEL_ML, "MYO": 1 * VOXEL_ML, "LV": 700 * VOXEL_ML})


def test_cylinder_volumes_match_the_analytic_volume() -> None:
    """A disc of radius 30 voxels on 6 slices: pi r² h within 0.5 % (voxelisation error)."""
    labels = heart((96, 96, 10), lv_radius=30, wall=0, rv_box=(slice(0, 0), slice(0, 0)), slices=slice(2, 8))
    analytic_ml = math.pi * (30 * 1.25) * (30 * 1.5) * 6 * 8.0 / 1000  # an ellipse in mm: pi a b per slice
    assert structure_volumes_ml(labels, VOXEL_ML)["LV"] == pytest.approx(analytic_ml, rel=5e-3)


def test_indices_from_ed_and_es_volumes() -> None:
    ed_labels = heart((96, 96, 10), lv_radius=20, wall=6, rv_box=(slice(0, 20), slice(30, 60)), slices=slice(1, 9))
    es_labels = heart((96, 96, 10), lv_radius=12, wall=9, rv_box=(slice(5, 15), slice(30, 60)), slices=slice(1, 9))
    ed, es = structure_volumes_ml(ed_labels, VOXEL_ML), structure_volumes_ml(es_labels, VOXEL_ML)
    indices = cardiac_indices(ed, es)
    counts = {name: [int((v == label).sum()) for v in (ed_labels, es_labels)] for name, label in
              (("RV", 1), ("MYO", 2), ("LV", 3))}
    lv_edv, lv_esv = (n * VOXEL_ML for n in counts["LV"])
    rv_edv, rv_esv = (n * VOXEL_ML for n in counts["RV"])
    assert indices["LV_EDV_ml"] == pytest.approx(lv_edv) and indices["LV_ESV_ml"] == pytest.approx(lv_esv)
    assert indices["LV_SV_ml"] == pytest.approx(lv_edv - lv_esv)
    assert indices["LV_EF_percent"] == pytest.approx(100 * (lv_edv - lv_esv) / lv_edv)
    assert indices["RV_EDV_ml"] == pytest.approx(rv_edv) and indices["RV_ESV_ml"] == pytest.approx(rv_esv)
    assert indices["RV_SV_ml"] == pytest.approx(rv_edv - rv_esv)
    assert indices["RV_EF_percent"] == pytest.approx(100 * (rv_edv - rv_esv) / rv_edv)
    assert indices["MYO_mass_ED_g"] == pytest.approx(counts["MYO"][0] * VOXEL_ML * 1.05)
    assert MYOCARDIAL_DENSITY_G_PER_ML == 1.05
    # The RV boxes are exact: 20*30*8 and 10*30*8 voxels -> EF exactly 50 %.
    assert indices["RV_EF_percent"] == pytest.approx(50.0)
    # The LV discs are close to the analytic ellipse areas (pi r² in voxels): EF ≈ 1 - 12²/20² = 64 %.
    assert indices["LV_EF_percent"] == pytest.approx(64.0, abs=1.0)


def test_ejection_fraction_is_none_without_an_end_diastolic_volume() -> None:
    zero = {"RV": 0.0, "MYO": 0.0, "LV": 0.0}
    indices = cardiac_indices(zero, zero)
    assert indices["LV_EF_percent"] is None and indices["RV_EF_percent"] is None
    assert indices["LV_SV_ml"] == 0.0 and indices["MYO_mass_ED_g"] == 0.0


def test_agreement_statistics_match_hand_computation() -> None:
    predicted = [110.0, 95.0, 150.0, 80.0, None]
    truth = [100.0, 100.0, 140.0, 85.0, 70.0]
    stats = agreement_statistics(predicted, truth)
    differences = np.array([10.0, -5.0, 10.0, -5.0])
    sd = differences.std(ddof=1)
    assert stats["n"] == 4
    assert stats["bias"] == pytest.approx(2.5)
    assert stats["sd"] == pytest.approx(sd)
    assert stats["loa_lower"] == pytest.approx(2.5 - 1.96 * sd) and stats["loa_upper"] == pytest.approx(2.5 + 1.96 * sd)
    assert stats["mean_absolute_error"] == pytest.approx(7.5)
    assert stats["pearson_r"] == pytest.approx(np.corrcoef(predicted[:4], truth[:4])[0, 1])


def test_agreement_statistics_with_too_few_pairs() -> None:
    assert agreement_statistics([None], [1.0])["bias"] is None
    one = agreement_statistics([2.0], [1.0])
    assert one["bias"] == 1.0 and one["sd"] is None and one["pearson_r"] is None


def test_boundary_is_one_voxel_in_plane_and_ignores_the_slice_axis() -> None:
    region = np.zeros((12, 12, 5), dtype=bool)
    region[2:10, 3:9, 1:4] = True  # 8 x 6 x 3 box
    boundary = boundary_voxel_mask(region, axis=2)
    # Per slice: the 8x6 rectangle minus its 6x4 interior; the top and bottom slices are not all boundary.
    assert boundary.sum() == 3 * (8 * 6 - 6 * 4)
    assert not boundary[:, :, 0].any() and boundary[2, 5, 1] and not boundary[5, 5, 2]
    assert boundary_voxel_mask(region, axis=0).sum() == 8 * (6 * 3 - 4 * 1)


def test_slice_axis_is_the_coarsest_and_mid_slice_follows_the_lv() -> None:
    assert slice_axis((1.5, 1.5, 8.0)) == 2 and slice_axis((9.0, 1.2, 1.2)) == 0 and slice_axis((1, 1, 1)) == 2
    labels = np.zeros((8, 8, 10), dtype=np.uint8)
    labels[2:5, 2:5, 3:8] = 3
    assert mid_slice(labels, 2, 3) == 5 and mid_slice(np.zeros_like(labels), 2, 3) == 5

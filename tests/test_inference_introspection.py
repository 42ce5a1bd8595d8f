"""``predict --introspect``: ACT halting and MoE expert maps on the input grid, and the per-structure summary."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from inference_support import affine_from, run_cli, save_nifti, synthetic_image
from nnunet_rdvit.inference.introspection import token_maps, window_maps
from nnunet_rdvit.inference.model import load_model
from nnunet_rdvit.inference.nifti_io import read_image
from nnunet_rdvit.inference.segmentation import segment

pytestmark = pytest.mark.usefixtures("inference_env")


def test_moe_maps_lie_on_an_oblique_input_grid(tiny_workspace, tiny_moe_model, tmp_path, capsys) -> None:
    affine = affine_from((1.4, 1.8, 9.0), rotation_deg=(20, -10, 65), origin=(-30.0, 12.0, 4.5))
    source = save_nifti(tmp_path / "in" / "case.nii.gz", synthetic_image(tiny_workspace), affine)
    out = tmp_path / "out"
    code, _, _ = run_cli(capsys, "predict", "-i", source, "-o", out, "-m", tiny_moe_model, "--introspect",
                         "--disable_progress_bar")
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert {"case_halting.nii.gz", "case_experts.nii.gz", "case_introspection.png", "case_introspection.json",
            "introspection.csv"} <= names
    halting, experts = nib.load(out / "case_halting.nii.gz"), nib.load(out / "case_experts.nii.gz")
    for image in (halting, experts):
        assert image.shape == (48, 48, 6) and np.allclose(image.affine, affine, atol=1e-6)
    loops = np.asarray(halting.dataobj)
    assert loops.dtype == np.float32 and 1.0 <= loops.min() and loops.max() <= 3.0  # 3 loops trained, min_loops 1
    dominant = np.asarray(experts.dataobj)
    assert dominant.dtype == np.uint8 and set(np.unique(dominant)) <= {1, 2, 3, 4}

    summary = json.loads((out / "case_introspection.json").read_text())
    assert set(summary) == {"background", "RV", "MYO", "LV"}
    labels = np.asarray(nib.load(out / "case.nii.gz").dataobj)
    for name, label in (("background", 0), ("RV", 1), ("MYO", 2), ("LV", 3)):
        entry = summary[name]
        assert entry["voxels"] == int((labels == label).sum())
        if entry["voxels"]:
            assert entry["boundary_voxels"] + entry["interior_voxels"] == entry["voxels"]
            assert entry["mean_loops"] == pytest.approx(loops[labels == label].mean(), rel=1e-5)
            assert sum(entry["expert_share"]) == pytest.approx(1.0, abs=1e-4)
            assert entry["dominant_expert"] == 1 + int(np.argmax(entry["expert_share"]))
    rows = (out / "introspection.csv").read_text().splitlines()
    assert rows[0].startswith("case,structure,voxels,mean_loops,boundary_mean_loops,interior_mean_loops,"
                              "dominant_expert,expert1_share") and len(rows) == 5


def test_maps_are_the_networks_token_maps_on_the_prediction_tiles(tiny_workspace, tiny_trained_model) -> None:
    """Here a slice is exactly one tile (patch 48×48, spacing as planned), so each slice's map must be the
    network's own token map upsampled to the tile, and nothing changes on the way back to the input grid."""
    model = load_model(tiny_trained_model, device="cpu")
    image = read_image(tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz")
    segmentation = segment(model, image)
    assert tuple(segmentation.preprocessed.shape[2:]) == tuple(model.predictor.configuration_manager.patch_size)
    grid = window_maps(model, segmentation.preprocessed)
    maps = token_maps(model, segmentation)
    assert grid.expert_share is None and maps.expert_share is None and maps.dominant_expert is None  # no MoE
    assert maps.covered.all() and maps.halting.shape == image.data.shape
    network = model.predictor.network
    for z in range(image.data.shape[2]):
        _, aux = network(segmentation.preprocessed[:, z][None], return_aux=True)
        steps = aux.halting_steps[0].float()  # token grid (y, x)
        factor = 48 // steps.shape[0]
        expected = steps.repeat_interleave(factor, 0).repeat_interleave(factor, 1)
        assert torch.equal(grid.halting[0, z], expected)
        assert np.allclose(maps.halting[:, :, z].T, expected.numpy(), atol=1e-5)


def test_introspection_refuses_a_network_without_act_or_moe(tiny_workspace, tiny_trained_model, tmp_path, capsys,
                                                            monkeypatch) -> None:
    from nnunet_rdvit.networks.aux_outputs import AuxOutputs
    from nnunet_rdvit.networks.segmentation import RDViT

    original = RDViT.forward

    def without_aux(self, x, n_loops=None, return_aux=False):
        logits = original(self, x, n_loops)
        return (logits, AuxOutputs()) if return_aux else logits

    monkeypatch.setattr(RDViT, "forward", without_aux)  # stands in for a ViT baseline or an ACT-free RD-ViT
    image = tiny_workspace.acdc_raw / "testing" / "patient101" / "patient101_frame01.nii.gz"
    code, _, err = run_cli(capsys, "predict", "-i", image, "-o", tmp_path / "out", "-m", tiny_trained_model,
                           "--introspect", "--disable_progress_bar")
    assert code == 2 and not (tmp_path / "out").exists()
    assert err.strip().endswith("--introspect needs an RD-ViT model (ACT halting and/or MoE experts); the network of "
                                "RDViTTrainer_tiny (RDViT) records neither")

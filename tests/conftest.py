"""Shared fixtures: the real ACDC folder (when present) and a tiny synthetic nnU-Net workspace.

The workspace is built once per session through the stock nnU-Net commands: synthetic ACDC-layout
data → conversion → ``nnUNetv2_plan_and_preprocess`` (2d and 3d_fullres) → ``nnUNetv2_train`` of tiny
trainers that live in ``tests/ext_trainers`` (a user's ``nnUNet_extTrainer`` folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_ACDC = REPO.parent / "shared" / "data" / "acdc"
EXT_TRAINERS = Path(__file__).resolve().parent / "ext_trainers"
TINY_DATASET_ID = 902


@pytest.fixture
def real_acdc() -> Path:
    if not (REAL_ACDC / "training").is_dir():
        pytest.skip(f"real ACDC data not found at {REAL_ACDC}")
    return REAL_ACDC


@dataclass
class TinyWorkspace:
    root: Path
    acdc_raw: Path
    raw: Path
    preprocessed: Path
    results: Path
    dataset: str  # DatasetXXX_ACDC
    dataset_id: int

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for stock nnU-Net commands on this workspace (CPU-friendly, ext trainers visible)."""
        from nnunet_rdvit.stock_commands import nnunet_environment

        return nnunet_environment(self.raw, self.preprocessed, self.results, nnUNet_extTrainer=str(EXT_TRAINERS),
                                  nnUNet_n_proc_DA="0", **extra)

    def model_folder(self, trainer: str, configuration: str) -> Path:
        return self.results / self.dataset / f"{trainer}__nnUNetPlans__{configuration}"


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory: pytest.TempPathFactory) -> TinyWorkspace:
    """Six synthetic patients (+2 held out), converted, planned and preprocessed for 2d and 3d_fullres."""
    from nnunet_rdvit.dataset_conversion import convert_acdc
    from nnunet_rdvit.stock_commands import nnunet_environment, run_stock_command
    from nnunet_rdvit.synthetic_acdc import generate_synthetic_acdc

    root = tmp_path_factory.mktemp("tiny_workspace")
    acdc_raw = generate_synthetic_acdc(root / "acdc_raw", 6, shape=(48, 48, 6), seed=3)
    held_out = generate_synthetic_acdc(root / "held_out", 2, shape=(48, 48, 6), seed=4, first_patient_id=101)
    (held_out / "training").rename(acdc_raw / "testing")
    raw, preprocessed, results = root / "nnUNet_raw", root / "nnUNet_preprocessed", root / "nnUNet_results"
    conversion = convert_acdc(acdc_raw, raw, TINY_DATASET_ID, progress=False)
    env = nnunet_environment(raw, preprocessed, results, nnUNet_n_proc_DA="1")
    run_stock_command("nnUNetv2_plan_and_preprocess", ["-d", TINY_DATASET_ID, "-c", "2d", "3d_fullres", "-np", "1"],
                      env, root / "logs" / "plan.log", echo=False)
    return TinyWorkspace(root, acdc_raw, raw, preprocessed, results, conversion.dataset_dir.name, TINY_DATASET_ID)


@pytest.fixture(scope="session")
def tiny_trained_model(tiny_workspace: TinyWorkspace) -> Path:
    """``RDViTTrainer_tiny`` trained on 2d fold 0 with the stock ``nnUNetv2_train``; returns the model folder
    (the one ``nnUNetv2_predict -tr RDViTTrainer_tiny -c 2d`` uses)."""
    from nnunet_rdvit.stock_commands import run_stock_command

    run_stock_command("nnUNetv2_train", [tiny_workspace.dataset_id, "2d", "0", "-tr", "RDViTTrainer_tiny",
                                         "-device", "cpu"],
                      tiny_workspace.env(), tiny_workspace.root / "logs" / "train_2d.log", echo=False)
    return tiny_workspace.model_folder("RDViTTrainer_tiny", "2d")


@pytest.fixture
def nnunet_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Empty nnU-Net folders set in this process's environment (nnU-Net reads them lazily)."""
    folders = {name: tmp_path / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for name, folder in folders.items():
        folder.mkdir()
        monkeypatch.setenv(name, str(folder))
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    monkeypatch.setenv("nnUNet_compile", "f")
    return folders


@pytest.fixture
def inference_env(monkeypatch: pytest.MonkeyPatch, one_thread: None) -> None:
    """For the inference and analysis tests (``pytestmark = pytest.mark.usefixtures("inference_env")``): the tiny
    trainers are found through ``nnUNet_extTrainer``, on one thread (see :func:`one_thread`)."""
    monkeypatch.setenv("nnUNet_extTrainer", str(EXT_TRAINERS))
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    monkeypatch.setenv("nnUNet_compile", "f")


@pytest.fixture
def one_thread():
    """For the classification tests (``pytestmark``): tiny models on a shared 2-core machine run far faster
    (≈25× under load) with one intra-op thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_moe_model(tiny_workspace) -> Path:
    """``RDViTTrainer_MoE_tiny`` (4 experts, 3 loops) trained on 2d fold 0 with the stock ``nnUNetv2_train``."""
    from nnunet_rdvit.stock_commands import run_stock_command

    run_stock_command("nnUNetv2_train", [tiny_workspace.dataset_id, "2d", "0", "-tr", "RDViTTrainer_MoE_tiny",
                                         "-device", "cpu"],
                      tiny_workspace.env(), tiny_workspace.root / "logs" / "train_moe_2d.log", echo=False)
    return tiny_workspace.model_folder("RDViTTrainer_MoE_tiny", "2d")

"""Classification training and evaluation: an image-folder run lowers the loss, resume is step-identical,
DDP runs with gloo on two CPU processes, eval writes its report, and bad input gives exit code 2."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from torch.utils.data import Dataset


from nnunet_rdvit.classification import RecurrentDepthViT, VisionTransformer
from nnunet_rdvit.classification.data import Augmentation
from nnunet_rdvit.classification.distributed import setup_distributed
from nnunet_rdvit.classification.objective import ClassificationObjective
from nnunet_rdvit.classification.pipelines import distill_on_folder, evaluate_checkpoint, train_on_folder
from nnunet_rdvit.classification.train import TrainSettings, fit
from nnunet_rdvit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_ARGS = ["--arch-arg", "img_size=32", "--arch-arg", "patch_size=8", "--arch-arg", "embed_dim=32",
             "--arch-arg", "num_heads=2"]
COLOURS = {"blue": (40, 40, 200), "green": (40, 200, 40), "red": (200, 40, 40)}


def _write_images(root: Path, classes: dict[str, tuple[int, int, int]], count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, colour in classes.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            pixels = np.clip(np.array(colour) + rng.normal(0, 50, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageNet layout, three colour classes of noisy 32×32 PNGs: 16 per class in train/, 4 in val/."""
    root = tmp_path_factory.mktemp("images")
    _write_images(root / "train", COLOURS, 16, seed=0)
    _write_images(root / "val", COLOURS, 4, seed=1)
    return root


class NoisyBlobs(Dataset):
    """Class k = a bright square at position k; fresh noise per access from torch's global RNG, so a
    resumed run only matches if the RNG state was restored (as with real augmentation)."""

    def __init__(self, count: int = 24, classes: int = 3):
        self.labels = torch.arange(count) % classes
        self.images = torch.zeros(count, 3, 16, 16)
        for i, label in enumerate(self.labels.tolist()):
            self.images[i, :, 4 * label:4 * label + 6, 4 * label:4 * label + 6] = 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index] + 0.3 * torch.randn(3, 16, 16), self.labels[index]


def _quick_settings(**overrides) -> TrainSettings:
    values = dict(epochs=2, batch_size=8, lr=2e-3, warmup_epochs=1, workers=0, progress=False)
    return TrainSettings(**{**values, **overrides})


def test_image_folder_run_lowers_the_loss_and_eval_reports(image_folder: Path, tmp_path: Path) -> None:
    settings = _quick_settings(epochs=4, augmentation=Augmentation(auto_augment=None, re_prob=0.0))
    history = train_on_folder(image_folder, tmp_path / "run", "rdvit_tiny_patch16_224",
                              {"img_size": 32, "patch_size": 8, "embed_dim": 32, "num_heads": 2, "num_loops": 3},
                              settings, device="cpu")
    assert len(history) == 4 and history[-1]["train_cross_entropy"] < history[0]["train_cross_entropy"]
    assert json.loads((tmp_path / "run" / "history.json").read_text()) == history

    report = evaluate_checkpoint(tmp_path / "run" / "last.pt", image_folder, "val", tmp_path / "eval",
                                 batch_size=5, workers=0, device="cpu")
    assert report["images"] == 12 and report["top1"] == pytest.approx(history[-1]["val_top1"])
    assert report["flops_per_image"] > 0 and report["images_per_second"] > 0
    assert [row["n_loops"] for row in report["loops_sweep"]] == [1, 3, 4, 6]
    assert sum(report["depth_histogram"]) == 12 * 16  # every patch token of every image
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["top1"] == report["top1"]
    for png in ("depth_histogram.png", "accuracy_vs_loops.png"):
        assert (tmp_path / "eval" / png).read_bytes().startswith(b"\x89PNG")


def test_raptor_distillation_anneals_teacher_forcing(image_folder: Path, tmp_path: Path) -> None:
    tiny = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "num_heads": 2, "depth": 4}
    settings = _quick_settings(epochs=1, augmentation=Augmentation(auto_augment=None, re_prob=0.0))
    train_on_folder(image_folder, tmp_path / "teacher", "vit_baseline_tiny_patch16_224", tiny, settings, "cpu")
    history = distill_on_folder(image_folder, tmp_path / "student", tmp_path / "teacher" / "last.pt", 2, "auto",
                                _quick_settings(epochs=4), "cpu")
    state = torch.load(tmp_path / "student" / "last.pt", weights_only=True)
    assert state["model_name"] == "raptor_tiny_patch16_224" and sum(state["model_kwargs"]["phases"]) == 4
    forcing = [epoch["train_teacher_forcing"] for epoch in history]
    assert forcing[0] == pytest.approx((1 + 5 / 6 + 4 / 6 + 3 / 6 + 2 / 6 + 1 / 6) / 6)  # 1 → 0 over 6 of 24 steps
    assert forcing[1:] == [0.0, 0.0, 0.0]
    assert history[-1]["train_distill_mse"] < history[0]["train_distill_mse"]
    assert "val_top1" in history[-1]  # validated with the teacher's frozen head
    teacher = torch.load(tmp_path / "teacher" / "last.pt", weights_only=True)["model"]
    for frozen in ("patch_embed.pos_embed", "cls_token", "norm.weight", "head.weight"):  # distill freezes them
        assert torch.equal(state["model"][frozen], teacher[frozen])
    start = state["model_kwargs"]["phases"][0] // 2  # the teacher block student block 0 started from
    assert not torch.equal(state["model"]["blocks.0.attn.q.weight"], teacher[f"blocks.{start}.attn.q.weight"])


def _fit_tiny(output: Path, resume: Path | None = None) -> VisionTransformer:
    torch.manual_seed(0)
    model = VisionTransformer(img_size=16, patch_size=4, num_classes=3, embed_dim=16, depth=2, num_heads=2)
    settings = _quick_settings(save_every=1, augmentation=Augmentation(mixup=0.8))  # mixup draws from NumPy
    meta = {"model_name": "vit_baseline_tiny_patch16_224", "model_kwargs": {}, "class_names": ["a", "b", "c"]}
    fit(model, ClassificationObjective(), NoisyBlobs(), NoisyBlobs(), settings, output, meta,
        setup_distributed("cpu"), resume)
    return model


def test_resume_continues_step_identically(tmp_path: Path) -> None:
    straight = _fit_tiny(tmp_path / "straight")
    resumed = _fit_tiny(tmp_path / "resumed", resume=tmp_path / "straight" / "epoch_0001.pt")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    first, second = (json.loads((tmp_path / run / "history.json").read_text()) for run in ("straight", "resumed"))
    for key in ("train_loss", "lr", "val_loss"):
        assert first[1][key] == second[1][key]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, output: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = setup_distributed("cpu")
    torch.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = RecurrentDepthViT(img_size=16, patch_size=4, num_classes=3, embed_dim=16, num_heads=2, num_loops=3,
                              moe_experts=2, moe_top_k=1)
    meta = {"model_name": "rdvit_tiny_patch16_224", "model_kwargs": {}, "class_names": ["a", "b", "c"]}
    history = fit(model, ClassificationObjective(), NoisyBlobs(), NoisyBlobs(), _quick_settings(batch_size=4),
                  Path(output), meta, ctx)
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
    Path(output, f"rank{rank}.json").write_text(json.dumps({"checksum": checksum, "history": history}))
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes_with_gloo(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["checksum"] == pytest.approx(rank1["checksum"], rel=1e-9)  # replicas stayed in sync
    for epoch0, epoch1 in zip(rank0["history"], rank1["history"]):  # losses and accuracy reduced over ranks
        assert {k: v for k, v in epoch0.items() if "per_second" not in k} == {
            k: v for k, v in epoch1.items() if "per_second" not in k}
    assert len(rank0["history"]) == 2 and (tmp_path / "last.pt").is_file()


@pytest.mark.parametrize("case, message", [
    ("missing_split", "does not exist; expected the ImageNet layout"),
    ("empty", "has no class folders"),
    ("mismatch", "do not match the training classes: missing ['red']"),
    ("unknown_model", "unknown model 'bvit_tiny'; did you mean rdvit_tiny_patch16_224"),
    ("bad_model_arg", "has no argument(s) ['width']"),
    ("edge_with_mixup", "without mixup/cutmix"),
])
def test_bad_input_is_a_clear_error_with_exit_code_2(case: str, message: str, image_folder: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """(tests/test_cli_bad_inputs.py covers paths and values the parser refuses.)"""
    data, model, extra = image_folder, "vit_baseline_tiny_patch16_224", []
    if case == "missing_split":
        data = tmp_path / "data"
        data.mkdir()
    elif case == "empty":
        data = tmp_path / "data"
        (data / "train").mkdir(parents=True)
    elif case == "mismatch":
        data = tmp_path / "data"
        _write_images(data / "train", COLOURS, 1, seed=0)
        _write_images(data / "val", {"blue": (0, 0, 255), "green": (0, 255, 0)}, 1, seed=0)
    elif case == "unknown_model":
        model = "bvit_tiny"
    elif case == "bad_model_arg":
        extra = ["--arch-arg", "width=3"]
    elif case == "edge_with_mixup":
        model, extra = "edge_recvit_tiny_patch16_224", ["--mixup", "0.8"]
    code = main(["classify", "train", "--data", str(data), "-o", str(tmp_path / "out"), "--arch", model,
                 "--epochs", "1", "--workers", "0", *TINY_ARGS, *extra])
    assert code == 2
    assert message in capsys.readouterr().err

"""nnU-Net's stock ``-tr`` lookup finds our trainers after ``pip install .``, and nothing of nnU-Net's is touched."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HOOK_PACKAGE = "nnunetv2.training.nnUNetTrainer.nnunet_rdvit"
# nnU-Net's lookup walks the files on disk, so only a folder there counts (an editable install maps the
# package name without one, and find_spec would wrongly say yes).
_TRAINER_TREE = Path(importlib.util.find_spec("nnunetv2.training.nnUNetTrainer").origin).parent
installed_into_nnunet = (_TRAINER_TREE / "nnunet_rdvit" / "__init__.py").is_file()
needs_wheel_install = pytest.mark.skipif(
    not installed_into_nnunet, reason="editable install: nnU-Net finds the trainers through nnUNet_extTrainer")


def _lookup_in_fresh_process(code: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    # The tests read the plugin's warning from stderr, so warnings must be shown whatever the caller set.
    env = {k: v for k, v in os.environ.items() if k not in ("nnUNet_extTrainer", "PYTHONWARNINGS")}
    env.update(env_extra or {})
    script = "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
    return subprocess.run([sys.executable, "-c", script + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300)


@needs_wheel_install
def test_stock_lookup_finds_our_trainers_and_still_the_stock_ones() -> None:
    result = _lookup_in_fresh_process("""
        for name in ("RDViTTrainer", "RDViTTrainer_MoE", "ViTTrainer", "RDViTTrainer_demo", "nnUNetTrainer_1epoch",
                     "nnUNetTrainer"):
            print(name, find(name).__module__)
    """)
    assert result.returncode == 0, result.stderr
    modules = dict(line.split() for line in result.stdout.splitlines() if line.count(" ") == 1)
    assert modules["RDViTTrainer"] == modules["ViTTrainer"] == "nnunet_rdvit.training.trainers"
    assert modules["nnUNetTrainer_1epoch"].startswith("nnunetv2.training.nnUNetTrainer.variants")


@needs_wheel_install
def test_a_broken_plugin_never_breaks_stock_trainers() -> None:
    result = _lookup_in_fresh_process("""
        import sys
        sys.modules["nnunet_rdvit.training"] = None  # simulate a broken install of our package
        print(find("nnUNetTrainer_1epoch").__name__)
        try:
            find("RDViTTrainer")
        except RuntimeError:
            print("RDViTTrainer unavailable")
    """)
    assert result.returncode == 0, result.stderr
    assert "nnUNetTrainer_1epoch" in result.stdout and "RDViTTrainer unavailable" in result.stdout
    assert "nnunet-rdvit trainers are unavailable" in result.stderr


@needs_wheel_install
def test_the_wheel_ships_no_file_that_nnunet_owns() -> None:
    files = importlib.metadata.files("nnunet-rdvit")
    inside_nnunet = [str(f) for f in files if str(f).startswith("nnunetv2/")]
    assert inside_nnunet, "the trainer hook package should be installed inside nnU-Net's trainer tree"
    assert all(f.startswith("nnunetv2/training/nnUNetTrainer/nnunet_rdvit/") for f in inside_nnunet), inside_nnunet
    nnunet_files = {str(f) for f in importlib.metadata.files("nnunetv2")}
    assert not nnunet_files & set(inside_nnunet)

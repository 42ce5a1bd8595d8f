"""The one reader of nnU-Net's folder variables (it replaced the copies in analysis, conversion and a trainer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnunet_rdvit.errors import UserError
from nnunet_rdvit.nnunet_folders import folder_variable, nnunet_folder


def test_folder_variable_reads_the_given_environment_or_os_environ(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert folder_variable("nnUNet_raw", {"nnUNet_raw": f"  {tmp_path}/a/../b "}) == tmp_path / "b"
    assert folder_variable("nnUNet_raw", {"nnUNet_raw": "   "}) is None
    assert folder_variable("nnUNet_raw", {}) is None
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    assert folder_variable("nnUNet_results") == tmp_path


def test_every_refusal_ends_with_the_callers_alternative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alternative = "pass labelled cases with --images DIR --labels DIR"
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(UserError, match=r"^nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw \(nnU-Net's "
                                        r"folder variables must be set as for nnUNetv2_train\), or pass labelled"):
        nnunet_folder("nnUNet_raw", alternative=alternative)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"does not exist; point nnUNet_raw to the existing nnU-Net folder, or pass "
                                        r"labelled cases with --images DIR --labels DIR$"):
        nnunet_folder("nnUNet_raw", alternative=alternative)
    with pytest.raises(UserError, match=r"does not exist; point nnUNet_raw to the existing nnU-Net folder$"):
        nnunet_folder("nnUNet_raw")

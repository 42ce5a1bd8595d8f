"""``nnunet-rdvit demo``: the whole pipeline, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnunet_rdvit.cli import main
from nnunet_rdvit.demo import MARKER

EXT_TRAINERS = Path(__file__).resolve().parent / "ext_trainers"


def test_demo_runs_the_whole_pipeline(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("nnUNet_extTrainer", str(EXT_TRAINERS))  # a tiny budget instead of RDViTTrainer_demo
    out = tmp_path / "demo"
    code = main(["demo", "-o", str(out), "--train-patients", "5", "--test-patients", "1",
                 "-tr", "RDViTTrainer_tiny", "-device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0
    for stage in ("[1/6]", "[3/6]", "[4/6]", "[6/6]"):
        assert stage in printed
    for structure in ("RV:", "MYO:", "LV:", "mean:"):
        assert structure in printed
    assert (out / "predictions" / "summary.json").is_file()
    assert (out / "nnUNet_results" / "Dataset990_ACDC" / "RDViTTrainer_tiny__nnUNetPlans__2d" / "fold_0"
            / "aux_progress.png").is_file()
    assert str(out / "predictions") in printed
    # running again without --overwrite is refused, with it the folder is replaced
    assert main(["demo", "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_refuses_a_folder_it_did_not_create(tmp_path, capsys) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    assert main(["demo", "-o", str(precious), "--overwrite"]) == 2
    assert "was not created by `nnunet-rdvit demo`" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "do not delete"


def test_overwrite_replaces_only_an_earlier_demo_folder(tmp_path) -> None:
    from nnunet_rdvit.demo import prepare_output_folder

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / MARKER).write_text("")
    (earlier / "old.txt").write_text("old")
    prepare_output_folder(earlier, overwrite=True)
    assert not (earlier / "old.txt").exists() and (earlier / MARKER).exists()


def test_prepare_output_folder_names_an_unusable_output(tmp_path) -> None:
    """The library-level check behind the CLI's (tests/test_cli_bad_inputs.py covers the command line)."""
    from nnunet_rdvit.demo import prepare_output_folder
    from nnunet_rdvit.errors import UserError

    blocker = tmp_path / "a_file"
    blocker.write_text("x")  # a folder cannot be created below a file, not even by root
    with pytest.raises(UserError, match="cannot write the demo output folder"):
        prepare_output_folder(blocker / "demo", overwrite=False)
    with pytest.raises(UserError, match="is not a folder"):
        prepare_output_folder(blocker, overwrite=True)
    assert blocker.read_text() == "x"

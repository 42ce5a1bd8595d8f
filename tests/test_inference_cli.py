"""The two inference commands are registered and their help renders (argparse %-formats help strings)."""

from __future__ import annotations

import pytest

from nnunet_rdvit.cli import main


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["index-agreement", "--help"]])
def test_help_renders(argv, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "predict" in out and ("index-agreement" in out or "PRED_DIR" in out or "MODEL_DIR" in out)

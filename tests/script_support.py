"""A benchmark script imported and its ``main`` run in-process, as ``python benchmarks/<name>.py`` runs it."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def import_benchmark(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their siblings, as when run directly
    return importlib.import_module(name)


def run_main(script: ModuleType, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``script.main(argv)``'s exit status (argparse's exit included), standard output and standard error."""
    try:
        code = script.main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err

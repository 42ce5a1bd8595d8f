"""A source checkout imports every module without being installed (``python -m nnunet_rdvit`` in a clone)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from nnunet_rdvit.checkout import CheckoutPackageFinder, install_checkout_finder

ROOT = Path(__file__).resolve().parents[1]


def test_the_finder_serves_the_converter_from_the_top_level_folder_only() -> None:
    finder = CheckoutPackageFinder(ROOT)
    spec = finder.find_spec("nnunet_rdvit.dataset_conversion")
    assert Path(spec.origin) == ROOT / "dataset_conversion" / "__init__.py"
    assert spec.submodule_search_locations == [str(ROOT / "dataset_conversion")]
    assert finder.find_spec("nnunet_rdvit.trainers") is None and finder.find_spec("dataset_conversion") is None


def test_an_installed_package_adds_no_finder(tmp_path: Path) -> None:
    (tmp_path / "nnunet_rdvit").mkdir()
    before = list(sys.meta_path)
    install_checkout_finder(tmp_path / "nnunet_rdvit")  # site-packages: no pyproject.toml beside it
    assert sys.meta_path == before


def test_python_m_in_an_uninstalled_checkout_reaches_the_converter(tmp_path: Path) -> None:
    # -S: no site processing, so no .pth file (an editable install's own mapping) is read; the checkout comes first
    # on the path, the dependencies after it.
    paths = [str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    code = ("import nnunet_rdvit, nnunet_rdvit.dataset_conversion.acdc as acdc; "
            "print(nnunet_rdvit.__file__); print(acdc.__file__)")
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stderr
    package, converter = result.stdout.split()
    assert Path(package) == ROOT / "nnunet_rdvit" / "__init__.py"
    assert Path(converter) == ROOT / "dataset_conversion" / "acdc.py"

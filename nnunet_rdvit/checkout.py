"""Importing ``nnunet_rdvit.dataset_conversion`` from a source checkout that was never installed.

The repository keeps the converter in the top-level ``dataset_conversion/`` folder; ``pip install`` maps it to
``nnunet_rdvit.dataset_conversion`` (``[tool.setuptools.package-dir]`` in pyproject.toml). Run from the
repository root without installing (``python -m nnunet_rdvit convert-acdc …``), nothing does that mapping, so this
finder does the same: it serves that one package name from the checkout's folder, and nothing else.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

PACKAGE_DIRS = {"nnunet_rdvit.dataset_conversion": "dataset_conversion"}  # as pyproject.toml's package-dir


class CheckoutPackageFinder(importlib.abc.MetaPathFinder):
    """Finds the packages of :data:`PACKAGE_DIRS` in the repository root ``root``."""

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, fullname: str, path=None, target=None) -> ModuleSpec | None:
        folder = PACKAGE_DIRS.get(fullname)
        if folder is None:
            return None
        location = self.root / folder / "__init__.py"
        return importlib.util.spec_from_file_location(fullname, location,
                                                      submodule_search_locations=[str(location.parent)])


def install_checkout_finder(package_dir: Path) -> None:
    """Add the finder when ``package_dir`` (the imported ``nnunet_rdvit/``) sits in a source checkout.

    It goes last on ``sys.meta_path``, so an installed (or editable) mapping of the same name wins.
    """
    root = package_dir.parent
    if not (root / "pyproject.toml").is_file():
        return  # installed: the mapping is in site-packages
    if any(isinstance(finder, CheckoutPackageFinder) for finder in sys.meta_path):
        return
    if all((root / folder / "__init__.py").is_file() for folder in PACKAGE_DIRS.values()):
        sys.meta_path.append(CheckoutPackageFinder(root))

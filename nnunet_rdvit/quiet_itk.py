"""Silencing ITK's header warnings while nnU-Net's SimpleITK reader reads ACDC files."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def quiet_simpleitk() -> Iterator[None]:
    """ACDC's NIfTI headers make ITK warn on every read ("unexpected scales in sform") although the geometry is
    read correctly; dozens of identical warnings per case would bury the command's own output."""
    import SimpleITK

    shown = SimpleITK.ProcessObject.GetGlobalWarningDisplay()
    SimpleITK.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        SimpleITK.ProcessObject.SetGlobalWarningDisplay(shown)

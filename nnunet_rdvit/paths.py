"""Path checks every command needs, each turning a wrong path into one message that says what it is and what
was expected: an input that is a folder where a file is needed (or a FIFO, a device, ...), an output folder
that cannot be created or written, an output that would land inside an input.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable

from nnunet_rdvit.errors import UserError


def kind_of(path: Path) -> str:
    """What is at ``path``, in words ("a folder", "a FIFO (named pipe)", "missing", ...); symlinks followed."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # NotADirectoryError: a parent of it is a file
        return "a broken symbolic link" if path.is_symlink() else "missing"
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file or folder"


def require_folder(path: Path, what: str) -> Path:
    """``path`` if it is a folder; else :class:`UserError` saying what is there instead."""
    kind = kind_of(path)
    if kind == "missing":
        raise UserError(f"{what} {path} does not exist; pass an existing folder")
    if kind != "a folder":
        raise UserError(f"{what} {path} is {kind}, not a folder; pass a folder")
    return path


def require_file_or_folder(path: Path, what: str) -> str:
    """The kind of ``path`` ("a file" or "a folder"); :class:`UserError` for anything else."""
    kind = kind_of(path)
    if kind == "missing":
        raise UserError(f"{what} {path} does not exist")
    if kind not in ("a file", "a folder"):
        raise UserError(f"{what} {path} is {kind}, not a file or a folder; pass a regular file or a folder")
    return kind


def is_within(path: Path, folder: Path) -> bool:
    """True if ``path`` is ``folder`` or lies inside it (symlinks resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_output_outside(output: Path, input_folders: Iterable[Path], option: str = "-o") -> None:
    """Refuse an output folder that is, or lies inside, a folder given as input (it would write into it)."""
    for folder in input_folders:
        if is_within(output, folder):
            where = "is" if output.resolve() == folder.resolve() else "is inside"
            raise UserError(f"the output folder {output} {where} the input folder {folder}; pass a {option} folder "
                            f"outside every input (outputs are never written into inputs)")


def prepare_output_folder(output: Path, option: str = "-o") -> bool:
    """Create ``output`` (with parents) and check that files can be created in it; True if this call created it.

    Every reason it cannot be (a file in the way, a read-only or virtual file system, no permission) is one
    :class:`UserError` naming the folder.
    """
    kind = kind_of(output)
    if kind not in ("a folder", "missing"):
        raise UserError(f"the output {output} is {kind}, not a folder; pass a folder for {option}")
    blocking = next((parent for parent in output.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise UserError(f"cannot create the output folder {output}: {blocking} is {kind_of(blocking)}, not a "
                        f"folder; pass another {option}")
    created = kind == "missing"
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output):
            pass
    except OSError as error:
        remove_if_empty(output, created)
        raise UserError(f"cannot write to the output folder {output} ({error.strerror or error}); pass a writable "
                        f"folder for {option}") from None
    return created


def remove_if_empty(folder: Path, created: bool) -> None:
    """Remove ``folder`` again if this run created it and left it empty."""
    if created and folder.is_dir() and not any(folder.iterdir()):
        os.rmdir(folder)


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a regular file; else :class:`UserError` saying what is there instead."""
    kind = kind_of(path)
    if kind == "missing":
        raise UserError(f"{what} {path} does not exist; pass an existing file")
    if kind != "a file":
        raise UserError(f"{what} {path} is {kind}, not a regular file; pass a file")
    return path


def creatable_folder_problem(path: Path) -> str | None:
    """Why ``path`` can neither be created as a folder nor written into as one, else None; for checks before a
    command starts, when nothing may be created yet (:func:`prepare_output_folder` creates the folder).

    Permission bits do not tell (root passes every ``access`` check, yet cannot create folders under /proc),
    so this tries: it creates the outermost missing folder of ``path`` and removes it again, or, for an
    existing folder, creates and removes a hidden temporary folder in it. Nothing is left behind.
    """
    kind = kind_of(path)
    if kind == "a folder":
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".nnunet_rdvit-write-test-", dir=path))
        except OSError as error:
            return f"{path} cannot be written into ({error.strerror or error})"
        return None
    if not kind.startswith("missing"):
        return f"{path} is {kind}, not a folder"
    outermost = Path(os.path.abspath(path))
    while kind_of(outermost.parent).startswith("missing"):  # ends at the root folder at the latest
        outermost = outermost.parent
    parent_kind = kind_of(outermost.parent)
    if parent_kind != "a folder":
        return f"{path} cannot be created: {outermost.parent} is {parent_kind}, not a folder"
    try:
        outermost.mkdir()
    except FileExistsError:  # created meanwhile, e.g. by another rank of the same torchrun job
        return None
    except OSError as error:
        return f"{path} cannot be created ({error.strerror or error})"
    with contextlib.suppress(OSError):  # gone or no longer empty: another process has taken it over
        outermost.rmdir()
    return None

"""What a path given by the user is, and why it cannot serve as an input or output folder or file.

Each ``*_problem`` function returns ``None`` when the path is usable and otherwise one sentence naming the
problem, so that argparse types (:mod:`nnunet_rdvit.commands.argument_types`) and run-time checks of paths
from environment variables phrase the same problem the same way. A path that exists but is of the wrong kind
is never reported as missing.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from nnunet_rdvit.errors import UserError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def path_kind(path: str | os.PathLike) -> str:
    """``"a folder"``, ``"a file"``, ``"a named pipe (FIFO)"``, …, ``"a broken symbolic link"`` or ``"missing"``."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # the latter: a file where a folder of the path should be
        return "a broken symbolic link" if os.path.islink(path) else "missing"
    except OSError as error:
        return f"unreadable ({error.strerror})"
    return next((name for test, name in _KINDS if test(mode)), "not a file or folder")


def existing_folder_problem(path: str | os.PathLike) -> str | None:
    kind = path_kind(path)
    if kind == "missing":
        return _missing(path)
    if kind != "a folder":
        return f"{path} is {kind}, not a folder"
    if not os.access(path, os.R_OK | os.X_OK):
        return f"{path} is a folder that cannot be read (permission denied)"
    return None


def existing_file_problem(path: str | os.PathLike) -> str | None:
    kind = path_kind(path)
    if kind == "missing":
        return _missing(path)
    if kind != "a file":
        return f"{path} is {kind}, not a regular file"
    if not os.access(path, os.R_OK):
        return f"{path} cannot be read (permission denied)"
    return None


def creatable_folder_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` can neither be created as a folder nor written into as one, else ``None``.

    Permission bits do not tell (root passes every ``access`` check, yet cannot create folders under /proc),
    so this tries: it creates the first missing folder of the path and removes it again, or, for an existing
    folder, creates and removes a hidden temporary folder inside it. Nothing is left behind.
    """
    path = Path(path).expanduser()
    kind = path_kind(path)
    if kind not in ("missing", "a folder"):
        return f"{path} is {kind}, not a folder"
    try:
        if kind == "a folder":
            os.rmdir(tempfile.mkdtemp(prefix=".nnunet_rdvit-write-test-", dir=path))
            return None
        first_missing = _first_missing(path)
        parent_kind = path_kind(first_missing.parent)
        if parent_kind != "a folder":
            return f"{path} cannot be created: {first_missing.parent} is {parent_kind}, not a folder"
        first_missing.mkdir()
    except FileExistsError:  # created meanwhile, e.g. by another rank of the same torchrun job
        return None
    except OSError as error:
        return f"{path} cannot be {'written into' if kind == 'a folder' else 'created'} ({error.strerror})"
    with contextlib.suppress(OSError):  # gone or no longer empty: another process has taken it over
        first_missing.rmdir()
    return None


def inside_problem(output: str | os.PathLike, source: str | os.PathLike) -> str | None:
    """Why writing to ``output`` would write into the input folder ``source`` (the same or a sub-folder), else None."""
    output_resolved, source_resolved = Path(output).expanduser().resolve(), Path(source).expanduser().resolve()
    if output_resolved.is_relative_to(source_resolved):
        where = "is" if output_resolved == source_resolved else "is inside"
        return f"{output} {where} the input folder {source}, which is never written to"
    return None


def _first_missing(path: Path) -> Path:
    """The outermost missing folder of ``path`` (``path`` itself when its parent exists)."""
    first = Path(os.path.abspath(path))
    while first.parent != first and path_kind(first.parent) == "missing":
        first = first.parent
    return first


def _missing(path: str | os.PathLike) -> str:
    blocker = _first_missing(Path(path)).parent
    blocker_kind = path_kind(blocker)
    if blocker_kind != "a folder":
        return f"{path} does not exist ({blocker} is {blocker_kind}, not a folder)"
    return f"{path} does not exist"


def make_output_folder(path: str | os.PathLike, what: str) -> Path:
    """Create ``path`` (and its parents) as the folder for ``what`` (e.g. "-o/--output"), or raise UserError."""
    problem = creatable_folder_problem(path)
    if problem is None:
        try:
            Path(path).expanduser().mkdir(parents=True, exist_ok=True)
        except OSError as error:
            problem = f"{path} cannot be created ({error.strerror})"
    if problem is not None:
        raise UserError(f"{problem}; choose another {what}, a folder you can write to")
    return Path(path).expanduser()

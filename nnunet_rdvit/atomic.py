"""Atomic file writes: a reader sees the old file or the complete new one, never a partial one."""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


# ``.NAME.`` + mkstemp's 8 random characters + NAME's suffixes (or ``.tmp``): the temporaries of atomic_path.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>(\.[^.]*)*)")


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path next to ``target``; renames it onto ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_temporary_suffix(target.name), dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the file normal permissions
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def leftover_temporaries(folder: str | os.PathLike, name_pattern: str = "*") -> list[Path]:
    """Temporary files :func:`atomic_path` left in ``folder`` for targets matching ``name_pattern`` (a glob): a
    process killed inside the block cannot remove its own, so the next writer of the folder does. Only names
    ``atomic_path`` makes count (``.NAME.`` + 8 random characters + NAME's suffixes), not any hidden file.

    Call it only where no live writer can be at work (under the folder's lock, or for files only one run
    writes): the temporary of a write in progress looks the same."""
    return sorted(path for path in Path(folder).glob(f".{name_pattern}.*") if _is_temporary(path))


def _is_temporary(path: Path) -> bool:
    match = _TEMPORARY.fullmatch(path.name)
    return bool(match) and match["suffix"] == _temporary_suffix(match["name"])


def _temporary_suffix(name: str) -> str:
    return "".join(Path(name).suffixes) or ".tmp"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    """``text`` as ``target``'s whole UTF-8 content, published atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | os.PathLike, data: Any, indent: int = 2) -> None:
    """``data`` as indented JSON with a final newline, published atomically."""
    write_text_atomic(target, json.dumps(data, indent=indent) + "\n")

